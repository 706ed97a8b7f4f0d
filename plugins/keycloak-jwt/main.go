// Command keycloak-jwt is the Kong plugin server of the keycloak-jwt plugin
// (see README.md). Kong starts it with -kong-prefix and reads its schema
// from -dump; the plugin's Kong name is this executable's name.
package main

import (
	"log"

	"github.com/Kong/go-pdk/server"

	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"

	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
)

// Version is the plugin version reported to Kong (set with -ldflags -X).
var Version = "0.1.0"

func main() {
	if err := pluginmetrics.ServeFromFlag(); err != nil {
		log.Fatal(err)
	}
	if err := server.StartServer(keycloakjwt.New, Version, keycloakjwt.Priority); err != nil {
		log.Fatal(err)
	}
}

// Command header-guard is the Kong plugin server of the header-guard plugin
// (priority 1510, access phase only): header limits (431), removal of
// client-sent identity headers, and X-Request-ID. The logic lives in
// package headerguard; see README.md for the options and the PDK calls.
//
// Kong starts it with -kong-prefix and reads its schema from -dump; its
// plugin name is the executable's name.
package main

import (
	"log"

	"github.com/Kong/go-pdk/server"

	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// Version is the plugin version Kong reports (set with -ldflags "-X main.Version=...").
var Version = "0.1.0"

// Priority places header-guard before every other edgeguard plugin.
const Priority = 1510

// New is go-pdk's config constructor.
func New() interface{} { return headerguard.New() }

func main() {
	if err := pluginmetrics.ServeFromFlag(); err != nil {
		log.Fatal(err)
	}
	if err := server.StartServer(New, Version, Priority); err != nil {
		log.Fatalf("header-guard: %v", err)
	}
}

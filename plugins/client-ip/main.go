// Command client-ip is the Kong plugin server of the client-ip plugin
// (priority 1520, rewrite phase only, configured globally in kong.yml): it
// removes the client's X-Forwarded-For before Kong's runloop builds the
// upstream's, so every upstream gets exactly one X-Forwarded-For address —
// the client address Kong decided (trusted_ips, real_ip_*). The plugin is
// Kong-only and lives in package kongadapter (ClientIPConfig); see README.md.
//
// Kong starts it with -kong-prefix and reads its schema from -dump; its
// plugin name is the executable's name.
package main

import (
	"log"

	"github.com/Kong/go-pdk/server"

	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// Version is the plugin version Kong reports (set with -ldflags "-X main.Version=...").
var Version = "0.1.0"

func main() {
	if err := pluginmetrics.ServeFromFlag(); err != nil {
		log.Fatal(err)
	}
	if err := server.StartServer(kongadapter.NewClientIP, Version, kongadapter.ClientIPPriority); err != nil {
		log.Fatalf("client-ip: %v", err)
	}
}

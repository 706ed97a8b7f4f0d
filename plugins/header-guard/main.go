// Command header-guard is the Kong plugin server of the header-guard plugin
// (priority 1510, access phase only: header limits, removal of client-sent
// identity headers, X-Request-ID)
// (see README.md). Kong starts it with -kong-prefix and reads its schema
// from -dump; the plugin's Kong name is this executable's name.
//
// The plugin's configuration and pipeline live in package headerguard; this
// command only hands them to Kong: go-pdk appears here and in package
// kongadapter, nowhere else.
package main

import (
	"log"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"

	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// Version is the plugin version reported to Kong (set with -ldflags -X).
var Version = "0.1.0"

// config is headerguard.Config with go-pdk's access-phase handler: a defined
// type, not an embedding, so the schema Kong reads stays flat.
type config headerguard.Config

// New is go-pdk's config constructor.
func New() interface{} { return &config{} }

// UnmarshalJSON decodes Kong's config JSON as headerguard.Config does.
func (c *config) UnmarshalJSON(data []byte) error {
	return (*headerguard.Config)(c).UnmarshalJSON(data)
}

// Access is the Kong access-phase handler: the plugin's pipeline through
// the Kong adapter. (No Response handler: it would make Kong buffer
// upstream bodies and break streaming.)
func (c *config) Access(kong *pdk.PDK) { kongadapter.Access(kong, (*headerguard.Config)(c)) }

func main() {
	if err := pluginmetrics.ServeFromFlag(); err != nil {
		log.Fatal(err)
	}
	if err := server.StartServer(New, Version, headerguard.Priority); err != nil {
		log.Fatalf("header-guard: %v", err)
	}
}

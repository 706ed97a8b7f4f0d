// Command redis-ratelimit is the Kong plugin server of the redis-ratelimit plugin
// (see README.md). Kong starts it with -kong-prefix and reads its schema
// from -dump; the plugin's Kong name is this executable's name.
//
// The plugin's configuration and pipeline live in package redisratelimit; this
// command only hands them to Kong: go-pdk appears here and in package
// kongadapter, nowhere else.
package main

import (
	"log"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"

	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

// Version is the plugin version reported to Kong (set with -ldflags -X).
var Version = "0.1.0"

// config is redisratelimit.Config with go-pdk's access-phase handler: a defined
// type, not an embedding, so the schema Kong reads stays flat.
type config redisratelimit.Config

// New is go-pdk's config constructor.
func New() interface{} { return &config{} }

// UnmarshalJSON decodes Kong's config JSON as redisratelimit.Config does.
func (c *config) UnmarshalJSON(data []byte) error {
	return (*redisratelimit.Config)(c).UnmarshalJSON(data)
}

// Access is the Kong access-phase handler: the plugin's pipeline through
// the Kong adapter. (No Response handler: it would make Kong buffer
// upstream bodies and break streaming.)
func (c *config) Access(kong *pdk.PDK) { kongadapter.Access(kong, (*redisratelimit.Config)(c)) }

func main() {
	if err := pluginmetrics.ServeFromFlag(); err != nil {
		log.Fatal(err)
	}
	if err := server.StartServer(New, Version, redisratelimit.Priority); err != nil {
		log.Fatalf("redis-ratelimit: %v", err)
	}
}

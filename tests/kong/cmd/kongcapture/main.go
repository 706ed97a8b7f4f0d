// Command kongcapture is a go-pdk plugin server that answers every request
// with the plugin configuration exactly as Kong sent it: the raw JSON bytes
// go-pdk would decode into the plugin's config. The Kong tests
// (tests/kong) copy it under each edgeguard plugin's name — a go-pdk
// plugin's Kong name is its executable's name — and start Kong with these
// copies as the plugin servers while Kong reads the schemas from the real
// binaries' -dump, so the captured JSON is what the real plugins get.
//
// It is a test tool: it echoes its configuration to any client.
package main

import (
	"encoding/json"
	"flag"
	"log"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"
)

// Config keeps the raw configuration JSON of one plugin instance.
type Config struct {
	raw []byte
}

var _ json.Unmarshaler = (*Config)(nil)

// UnmarshalJSON keeps a copy of the bytes Kong sent.
func (c *Config) UnmarshalJSON(b []byte) error {
	c.raw = append([]byte(nil), b...)
	return nil
}

// Access answers 200 with the raw configuration.
func (c *Config) Access(kong *pdk.PDK) {
	kong.Response.Exit(200, c.raw, map[string][]string{"Content-Type": {"application/json"}})
}

// The flag the real plugin servers take in Kong's start_cmd
// (scripts/kong.sh renders it); accepted and ignored here.
var _ = flag.String("metrics-listen", "", "ignored: accepted for the real plugin servers' start_cmd")

func main() {
	if err := server.StartServer(func() interface{} { return &Config{} }, "0.0.0", 0); err != nil {
		log.Fatalf("kongcapture: %v", err)
	}
}

// Command emptyplugin is a go-pdk plugin server for load runs only
// (bench/README.md, `make load`): its access handler does nothing, so a
// route with it measures the floor of Kong's plugin-server protocol — one
// event over the Unix socket to this process and back, no PDK call.
//
// Its one option, calls (default 0), makes the handler issue that many
// kong.request.get_method calls, each one PDK round trip with the smallest
// answer: a route with calls: N next to one with calls: 0 gives the cost of
// a PDK round trip under load. It is not a production plugin and is not
// built by `make build`.
package main

import (
	"log"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"
)

// Version and Priority reported to Kong.
const (
	Version  = "0.1.0"
	Priority = 1000
)

// Config is the plugin's configuration.
type Config struct {
	// Calls is the number of kong.request.get_method round trips per
	// request (0: none, the protocol's floor).
	Calls int `json:"calls"`
}

// New returns an empty Config, as go-pdk's constructor wants it.
func New() interface{} { return &Config{} }

// Access does nothing but the configured round trips; a failed call ends
// the loop (Kong logs the broken event).
func (c *Config) Access(kong *pdk.PDK) {
	for range c.Calls {
		if _, err := kong.Request.GetMethod(); err != nil {
			return
		}
	}
}

func main() {
	if err := server.StartServer(New, Version, Priority); err != nil {
		log.Fatal(err)
	}
}

// Command emptyplugin is a go-pdk plugin server for load runs only
// (bench/README.md, `make load`): its access handler does nothing, so a
// route with it measures the floor of Kong's plugin-server protocol — one
// event over the Unix socket to this process and back, no PDK call.
//
// Its option calls (default 0) makes the handler issue that many
// kong.request.get_method calls, each one PDK round trip with the smallest
// answer: a route with calls: N next to one with calls: 0 gives the cost of
// a PDK round trip under load. With replay: true it makes the all-in-one
// edgeguard plugin's six calls with payloads of their sizes and nothing
// else: the protocol's share of that plugin's cost. With -coalesce it is served by
// bench/internal/pbserve instead of go-pdk's server: the same protocol with
// each exchange's writes sent in one syscall (run it under another
// executable name, which is its Kong plugin name, next to the go-pdk one).
// It is not a production plugin and is not built by `make build`.
package main

import (
	"flag"
	"log"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server"

	"github.com/edgeguard/edgeguard/bench/internal/pbserve"
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
	// Replay makes the all-in-one edgeguard plugin's six PDK calls of a
	// cached-JWT request with payloads of its sizes (replay.go) instead.
	Replay bool `json:"replay"`
	// WaitUS, with replay, sleeps that long after get_path — where the
	// plugin signs its assertion and asks Redis — so the Kong worker waits
	// on the plugin as it does for the real plugin, without its work.
	WaitUS int `json:"wait_us"`
}

// New returns an empty Config, as go-pdk's constructor wants it.
func New() interface{} { return &Config{} }

// Access does nothing but the configured round trips; a failed call ends
// the loop (Kong logs the broken event).
func (c *Config) Access(kong *pdk.PDK) {
	if c.Replay {
		replay(kong, time.Duration(c.WaitUS)*time.Microsecond)
		return
	}
	for range c.Calls {
		if _, err := kong.Request.GetMethod(); err != nil {
			return
		}
	}
}

var coalesce = flag.Bool("coalesce", false, "serve with bench/internal/pbserve (one write per exchange) instead of go-pdk's server")

func main() {
	flag.Parse() // go-pdk's flags (-kong-prefix, -dump) are registered too
	if *coalesce && flag.Lookup("dump").Value.String() != "true" {
		s := &pbserve.Server{New: func() pbserve.Accesser { return &Config{} }}
		log.Fatal(s.ListenAndServe())
	}
	if err := server.StartServer(New, Version, Priority); err != nil {
		log.Fatal(err)
	}
}

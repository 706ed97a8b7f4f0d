// Package clientiprewrite is the logic of the client-ip plugin: a global
// Kong plugin with a rewrite-phase handler only, which makes the upstream's
// X-Forwarded-For exactly one address — the client address Kong decided
// with its trusted_ips / real_ip rules (kong.client.get_forwarded_ip, nginx's
// $remote_addr after the realip module).
//
// Why the rewrite phase and why clearing is enough: before any plugin's
// access handler runs, Kong's runloop (kong/runloop/handler.lua, access
// "before", Kong 3.9.3) sets $upstream_x_forwarded_for, which nginx sends as
// X-Forwarded-For (proxy_set_header), to the client's X-Forwarded-For
// followed by the TCP peer ("client's value, peer") — or, when the request
// carries no X-Forwarded-For, to $remote_addr alone. A plugin cannot change
// that variable through go-pdk afterwards, but the rewrite phase runs before
// the runloop reads the header: removing the client's X-Forwarded-For there
// (one PDK call) makes Kong send $remote_addr, the one client address, on
// every route. $remote_addr itself was set by the realip module before the
// rewrite phase, so kong.client.get_forwarded_ip (the plugins' client IP)
// is unchanged.
//
// Only global plugins run in Kong's rewrite phase (it runs before routing),
// so kong.yml configures client-ip globally. It has no options, reads
// nothing, and does not authenticate anyone.
package clientiprewrite

import (
	"sync"

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
)

// Name is the plugin's Kong name.
const Name = "client-ip"

// Priority places client-ip before every other plugin in the rewrite phase
// (distinct from Kong's built-ins and edgeguard's other plugins).
const Priority = 1520

// Header is the header whose client copy the plugin removes.
const Header = "X-Forwarded-For"

// CallClearHeader is the one PDK call of a request.
const CallClearHeader = "kong.service.request.clear_header"

// CodeEdgeError answers a request whose header could not be removed.
const CodeEdgeError = "edge_error"

// Config is client-ip's Kong configuration: it has no options.
type Config struct {
	// Log replaces the plugin's logger (tests); nil: stderr.
	log *zerolog.Logger
}

// New returns an empty Config, as go-pdk's constructor wants it.
func New() interface{} { return &Config{} }

// UnmarshalJSON accepts what Kong sends for a plugin without options ({}
// or members such as "__seq__"); every member is ignored.
func (c *Config) UnmarshalJSON(data []byte) error {
	var plain struct{}
	return kongjson.Unmarshal(data, &plain)
}

// Rewrite is the Kong rewrite-phase handler: one
// kong.service.request.clear_header("X-Forwarded-For"). When the call fails
// the request is ended with 500 edge_error (the client's chain must not go
// upstream) — under Kong that answer is attempted on the same broken socket
// and may not arrive; Kong then answers 500 itself.
func (c *Config) Rewrite(kong *pdk.PDK) {
	if err := kong.ServiceRequest.ClearHeader(Header); err != nil {
		c.logger().Error().Err(err).Str("call", CallClearHeader).Msg("could not remove the client's X-Forwarded-For: request refused")
		kong.Response.Exit(500, exchange.ErrorBody(CodeEdgeError, "the gateway could not process the request"),
			map[string][]string{"Content-Type": {exchange.ContentTypeJSON}})
		pluginmetrics.Observe(Name, 2, 500, CodeEdgeError)
		return
	}
	pluginmetrics.Observe(Name, 1, 0, "")
}

var (
	loggerOnce sync.Once
	logger     zerolog.Logger
)

func (c *Config) logger() *zerolog.Logger {
	if c.log != nil {
		return c.log
	}
	loggerOnce.Do(func() { logger = pluginrt.Logger(Name) })
	return &logger
}

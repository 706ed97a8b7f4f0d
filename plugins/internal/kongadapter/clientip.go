// The client-ip plugin (ClientIPConfig): a global Kong plugin with a rewrite-phase handler only, which makes the upstream's
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
// nothing, and does not authenticate anyone. It is Kong-only (no pipeline):
// it lives here, beside the access-phase adapter.

package kongadapter

import (
	"sync"

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginlog"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// ClientIPName is the client-ip plugin's Kong name; ClientIPPriority places
// it before every other plugin in the rewrite phase (distinct from Kong's
// built-ins and edgeguard's other plugins).
const (
	ClientIPName     = "client-ip"
	ClientIPPriority = 1520
)

// HeaderForwardedFor is the header whose client copy client-ip removes (its
// one PDK call: CallClearHeader).
const HeaderForwardedFor = "X-Forwarded-For"

// ClientIPConfig is client-ip's Kong configuration: it has no options.
type ClientIPConfig struct {
	// Log replaces the plugin's logger (tests); nil: stderr.
	log *zerolog.Logger
}

// NewClientIP returns an empty ClientIPConfig, as go-pdk's constructor
// wants it.
func NewClientIP() interface{} { return &ClientIPConfig{} }

// UnmarshalJSON accepts what Kong sends for a plugin without options ({}
// or members such as "__seq__"); every member is ignored.
func (c *ClientIPConfig) UnmarshalJSON(data []byte) error {
	var plain struct{}
	return kongjson.Unmarshal(data, &plain)
}

// Rewrite is the Kong rewrite-phase handler: one
// kong.service.request.clear_header("X-Forwarded-For"). When the call fails
// the request is ended with 500 edge_error (the client's chain must not go
// upstream) — under Kong that answer is attempted on the same broken socket
// and may not arrive; Kong then answers 500 itself.
func (c *ClientIPConfig) Rewrite(kong *pdk.PDK) {
	if err := kong.ServiceRequest.ClearHeader(HeaderForwardedFor); err != nil {
		c.logger().Error().Err(err).Str("call", CallClearHeader).Msg("could not remove the client's X-Forwarded-For: request refused")
		kong.Response.Exit(500, exchange.ErrorBody(pipeline.CodeEdgeError, "the gateway could not process the request"),
			map[string][]string{"Content-Type": {exchange.ContentTypeJSON}})
		pluginmetrics.Observe(ClientIPName, 2, 500, pipeline.CodeEdgeError)
		return
	}
	pluginmetrics.Observe(ClientIPName, 1, 0, "")
}

var (
	clientIPLogOnce sync.Once
	clientIPLog     zerolog.Logger
)

func (c *ClientIPConfig) logger() *zerolog.Logger {
	if c.log != nil {
		return c.log
	}
	clientIPLogOnce.Do(func() { clientIPLog = pluginlog.New(ClientIPName) })
	return &clientIPLog
}

// Package pluginrt holds the small runtime pieces every edge plugin shares:
// its logger, one-time configuration provisioning per Kong plugin instance,
// and the fail-closed answer of a misconfigured instance.
//
// go-pdk has no configuration validation hook: Kong hands a plugin server
// its config as JSON when an instance starts, before any request, and
// serves many requests on one instance concurrently. So a plugin provisions
// and validates its config on the instance's first request (Once), and a
// misconfigured instance answers every request with Misconfigured and logs
// the reason once. Nothing here logs per request.
package pluginrt

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongx"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// Logger returns the JSON logger of a plugin: stderr (which Kong's plugin
// server collects), with a timestamp and the field plugin=<name>, through
// the redaction writer (no JWT or API key can reach the log, whatever a
// caller logs by mistake).
func Logger(plugin string) zerolog.Logger {
	return zerolog.New(redact.Writer(os.Stderr)).With().Timestamp().Str("plugin", plugin).Logger()
}

// Once provisions a value (typically a validated, compiled config) once and
// hands it to every later caller. The zero Once is ready to use; a Once must
// not be copied after first use.
type Once[T any] struct {
	once sync.Once
	v    T
	err  error
}

// Get returns the value built by the first call's build. When build fails,
// report (if not nil) is called once with its error, and every call returns
// that error. Calls are safe concurrently; after the first they cost one
// atomic load.
func (o *Once[T]) Get(build func() (T, error), report func(error)) (T, error) {
	o.once.Do(func() {
		o.v, o.err = build()
		if o.err != nil && report != nil {
			report(o.err)
		}
	})
	return o.v, o.err
}

// CodeMisconfigured is the error code of a misconfigured plugin instance.
const CodeMisconfigured = "edge_misconfigured"

// Misconfigured ends the request with 500
// {"error":{"code":"edge_misconfigured",...}}: the edge fails closed when a
// plugin's configuration is invalid. The reason belongs in the log (once),
// never in the response.
func Misconfigured(ex exchange.Exchange) {
	exchange.Deny(ex, 500, CodeMisconfigured, "the gateway is misconfigured", nil)
}

// ReadSecretFile reads a secret from a file named in a plugin's config
// (never the secret itself in kong.yml: Kong's Admin API would show it).
// Trailing newlines are dropped; an empty path returns "". Errors name the
// option and the path, never the content.
func ReadSecretFile(option, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read %s", option, path)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", option, path)
	}
	return s, nil
}

// Handler is a provisioned plugin: the logic of one valid configuration.
type Handler interface {
	Handle(exchange.Exchange)
	// MaxHeaders is the header-line limit the Kong adapter reads with.
	MaxHeaders() int
}

// Instance is the runtime state of one plugin configuration (one Kong
// plugin instance): it provisions the configuration on the first request,
// answers every request of a misconfigured instance 500 edge_misconfigured
// and logs the reason once. Keep it in an unexported field of the Kong
// config struct (go-pdk's schema skips unexported fields).
type Instance[T Handler] struct {
	once Once[T]
	// Log replaces the plugin's default logger (stderr); tests set it.
	Log *zerolog.Logger
}

// Logger is the instance's logger for the named plugin.
func (in *Instance[T]) Logger(plugin string) zerolog.Logger {
	if in.Log != nil {
		return *in.Log
	}
	return Logger(plugin)
}

// Get returns the provisioned handler, building it with provision on first
// use; a failure is logged once and returned to every caller.
func (in *Instance[T]) Get(plugin string, provision func() (T, error)) (T, error) {
	return in.once.Get(provision, func(err error) {
		l := in.Logger(plugin)
		l.Error().Err(err).Msg("invalid configuration: every request on this instance answers 500 edge_misconfigured")
	})
}

// Handle runs the plugin on one request of an exchange host (dev gateway,
// all-in-one plugin).
func (in *Instance[T]) Handle(plugin string, ex exchange.Exchange, provision func() (T, error)) {
	h, err := in.Get(plugin, provision)
	if err != nil {
		Misconfigured(ex)
		return
	}
	h.Handle(ex)
}

// Access is the Kong access-phase handler: the request through the kongx
// adapter, which reads max_headers+1 headers in one call.
func (in *Instance[T]) Access(plugin string, kong *pdk.PDK, provision func() (T, error)) {
	h, err := in.Get(plugin, provision)
	var a *kongx.Adapter
	if err != nil {
		a = kongx.Serve(kong, kongx.Options{}, Misconfigured)
	} else {
		a = kongx.Serve(kong, kongx.Options{MaxHeaders: h.MaxHeaders()}, h.Handle)
	}
	pluginmetrics.Observe(plugin, a.CallCount(), a.ExitStatus(), a.Denial())
}

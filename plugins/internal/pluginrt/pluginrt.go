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
	"github.com/edgeguard/edgeguard/pkg/identity"
	"os"
	"strings"
	"sync"

	"github.com/Kong/go-pdk"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
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

// Minimum lengths of the secrets plugins read (the same as the services').
const (
	// MinInternalToken is internal_token_file's (llm-api's INTERNAL_TOKEN).
	MinInternalToken = 32
	// MinRedisPassword is the redis password files' (llm-api's REDIS_PASSWORD).
	MinRedisPassword = 16
)

// ReadSecretFile reads a secret from a file named in a plugin's config
// (never the secret itself in kong.yml: Kong's Admin API would show it).
// Trailing newlines are dropped; an empty path returns "". A value shorter
// than minLen bytes, or a placeholder from the templates and docs
// (envconf.IsPlaceholder: "changeme", "${VAR}", one repeated character…), is
// refused: a plugin is always strict (its instance then answers 500
// edge_misconfigured). Errors name the option and the path, never the
// content.
func ReadSecretFile(option, path string, minLen int) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read %s", option, path)
	}
	s := strings.TrimRight(string(b), "\r\n")
	switch {
	case s == "":
		return "", fmt.Errorf("%s: %s is empty", option, path)
	case envconf.IsPlaceholder([]byte(s)):
		return "", fmt.Errorf("%s: %s holds a placeholder or default value; generate a random secret", option, path)
	case len(s) < minLen:
		return "", fmt.Errorf("%s: %s holds %d bytes, at least %d required", option, path, len(s), minLen)
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
	aud  Once[*audit.Emitter]
	// Log replaces the plugin's default logger (stderr); tests set it.
	Log *zerolog.Logger
}

// Auditor returns an instance's audit emitter, nil when its config has no
// `audit` section (package auditconf). It is called once per instance.
type Auditor func() (*audit.Emitter, error)

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
	return in.GetAudited(plugin, provision, nil)
}

// GetAudited is Get that also emits one config.rejected audit event
// (severity critical) when provisioning fails and the instance's audit
// section is usable.
func (in *Instance[T]) GetAudited(plugin string, provision func() (T, error), aud Auditor) (T, error) {
	return in.once.Get(provision, func(err error) {
		l := in.Logger(plugin)
		l.Error().Err(err).Msg("invalid configuration: every request on this instance answers 500 edge_misconfigured")
		in.Emitter(plugin, aud).Emit(audit.Event{Actor: audit.Actor{Subject: plugin}, Action: audit.ActionConfigRejected,
			Target: plugin, Outcome: audit.OutcomeFailure, Reason: CodeMisconfigured, Severity: audit.SeverityCritical, Source: plugin})
	})
}

// Emitter is the instance's audit emitter (nil: off; a broken audit
// section is logged once and turns audit off for the instance, whose
// provisioning refuses it anyway).
func (in *Instance[T]) Emitter(plugin string, aud Auditor) *audit.Emitter {
	if aud == nil {
		return nil
	}
	e, _ := in.aud.Get(func() (*audit.Emitter, error) { return aud() }, func(err error) {
		l := in.Logger(plugin)
		l.Error().Err(err).Msg("audit section unusable: this instance emits no audit events")
	})
	return e
}

// Handle runs the plugin on one request of an exchange host (the all-in-one plugin, tests,
// all-in-one plugin). aud may be nil (no audit).
func (in *Instance[T]) Handle(plugin string, ex exchange.Exchange, provision func() (T, error), aud Auditor) {
	h, err := in.GetAudited(plugin, provision, aud)
	if err != nil {
		Misconfigured(ex)
		return
	}
	RunAudited(in.Emitter(plugin, aud), plugin, ex, h)
}

// RunAudited runs h on ex and, when em is not nil, emits the audit event
// of the answer h gave (AuditDenial). The event is built as h ends the
// request, before the host's Exit, as under Kong (Access): the host may not
// be readable after it.
func RunAudited(em *audit.Emitter, plugin string, ex exchange.Exchange, h Handler) {
	if em == nil {
		h.Handle(ex)
		return
	}
	h.Handle(&recorder{Exchange: ex, em: em, plugin: plugin})
}

// Access is the Kong access-phase handler: the request through the kongadapter
// adapter, which reads max_headers+1 headers in one call. aud may be nil.
// With audit on, the event of a denial is built in the adapter's OnExit
// hook: Kong closes the PDK event with kong.response.exit, so the client
// address and path are read before it (and only for an audited answer).
func (in *Instance[T]) Access(plugin string, kong *pdk.PDK, provision func() (T, error), aud Auditor) {
	h, err := in.GetAudited(plugin, provision, aud)
	var a *kongadapter.Adapter
	if err != nil {
		a = kongadapter.Serve(kong, kongadapter.Options{}, Misconfigured)
	} else {
		opts := kongadapter.Options{MaxHeaders: h.MaxHeaders()}
		if em := in.Emitter(plugin, aud); em != nil {
			opts.OnExit = func(a *kongadapter.Adapter, status int) { AuditDenial(em, plugin, a, status, a.Denial()) }
		}
		a = kongadapter.Serve(kong, opts, h.Handle)
	}
	pluginmetrics.Observe(plugin, a.CallCount(), a.ExitStatus(), a.Denial())
}

// recorder notes the code and refused identity of the answer a handler
// gives, and emits its audit event as the handler ends the request.
type recorder struct {
	exchange.Exchange
	em      *audit.Emitter
	plugin  string
	code    string
	refused *identity.Identity
}

// Exit emits the answer's audit event, then ends the request: the event's
// request attributes are read while the host can still answer them.
func (r *recorder) Exit(status int, body []byte, headers map[string]string) {
	if !r.Exchange.Exited() {
		AuditDenial(r.em, r.plugin, r, status, r.code)
	}
	r.Exchange.Exit(status, body, headers)
}

func (r *recorder) RecordRefused(id *identity.Identity) {
	r.refused = id
	if d, ok := r.Exchange.(interface{ RecordRefused(*identity.Identity) }); ok {
		d.RecordRefused(id)
	}
}

// Refused is the identity a 403 refused, or nil.
func (r *recorder) Refused() *identity.Identity { return r.refused }

// SetRequestID passes header-guard's request id to the host.
func (r *recorder) SetRequestID(id string) {
	if h, ok := r.Exchange.(exchange.RequestIDHolder); ok {
		h.SetRequestID(id)
	}
}

// RequestID is the host's kept request id, or "".
func (r *recorder) RequestID() string {
	if h, ok := r.Exchange.(exchange.RequestIDHolder); ok {
		return h.RequestID()
	}
	return ""
}

// NoPriorIdentity passes the all-in-one chain's hint on to a host that takes
// it (an in-process host): wrapping the host for audit must not change what
// the chain sees.
func (r *recorder) NoPriorIdentity() {
	if fc, ok := r.Exchange.(interface{ NoPriorIdentity() }); ok {
		fc.NoPriorIdentity()
	}
}

func (r *recorder) RecordDenial(code string) {
	r.code = code
	if d, ok := r.Exchange.(interface{ RecordDenial(code string) }); ok {
		d.RecordDenial(code)
	}
}

// AuditDenial emits the audit event of a request a plugin is ending: 401/403
// are auth.denied, 429 is auth.rate_limited, with the answer's error code
// as reason; anything else (the request went on, 400, 431, 5xx) is not an
// audit event and reads nothing. Only requests that were denied pay for it.
// Hosts call it before the exit goes out (kongadapter.Options.OnExit, recorder):
// it reads the client address, X-Request-ID, the path and, on a 429, the
// request's identity. The subject of a
// 403 is the identity the plugin refused (exchange.Forbid: no PDK call); on
// a 429 it is the request's authenticated identity.
func AuditDenial(em *audit.Emitter, plugin string, ex exchange.Exchange, status int, code string) {
	if em == nil {
		return
	}
	ev := audit.Event{Outcome: audit.OutcomeDenied, Source: plugin}
	switch status {
	case 401:
		ev.Action, ev.Severity = audit.ActionAuthDenied, audit.SeverityInfo
	case 403:
		ev.Action, ev.Severity = audit.ActionAuthDenied, audit.SeverityWarning
		if r, ok := ex.(interface{ Refused() *identity.Identity }); ok {
			if id := r.Refused(); id != nil {
				ev.Actor.Subject, ev.Actor.KeyID = id.Subject, id.APIKeyID
			}
		}
	case 429:
		ev.Action, ev.Severity = audit.ActionAuthRateLimited, audit.SeverityInfo
		if code == "too_many_auth_failures" {
			ev.Severity = audit.SeverityWarning
		}
		if id, ok := ex.Authenticated(); ok && id != nil {
			ev.Actor.Subject, ev.Actor.KeyID = id.Subject, id.APIKeyID
		}
	default:
		return
	}
	ev.Reason = code
	ev.Actor.IP = audit.CleanIP(ex.ClientIP())
	// the id the client is answered with: header-guard's (which replaced a
	// malformed or credential-shaped one) when it ran on this exchange,
	// else the client's when acceptable; never a credential-shaped value
	ev.RequestID = exchange.RequestID(ex)
	// the path is the target when it is a plain identifier (never a
	// credential: those are refused), else none; the same for the subject
	ev.Target = audit.CleanTarget(ex.Path())
	ev.Actor.Subject, ev.Actor.KeyID = audit.CleanTarget(ev.Actor.Subject), audit.CleanKeyID(ev.Actor.KeyID)
	em.Emit(ev)
}

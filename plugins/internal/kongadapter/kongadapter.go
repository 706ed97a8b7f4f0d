// Package kongadapter is the Kong side of the edge: the only package (with
// the plugin servers' main packages) that imports go-pdk. Access is the Kong
// access-phase entry point of every pipeline plugin: it serves the plugin's
// pipeline (package pipeline) an exchange.Exchange from go-pdk with the
// fewest PDK calls the features allow, and records every call it makes so
// tests can assert the exact list. ClientIP is the client-ip plugin.
//
// Under Kong each PDK call is a round trip over a Unix socket to the Kong
// worker, and that round trip, not our Go code, dominates a Go plugin's cost.
// So the adapter reads all request headers once (lazily), reads method, path,
// client address and the shared identity lazily and at most once each, and
// buffers header writes: upstream clears and sets and response headers go
// out in Flush as one call per cleared name, one set_headers for the
// upstream and one set_headers for the response, or together with Exit.
//
// Kong ends the PDK event with kong.response.exit: every call after it fails
// ("use of closed network connection"). The runtime reads what an answer's
// audit event needs before it calls Exit.
//
// It is not a general go-pdk wrapper: it offers only what the Exchange
// interface needs, in the access phase. An Adapter serves one request and is
// not safe for concurrent use.
package kongadapter

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/client"
	"github.com/Kong/go-pdk/entities"

	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// IdentityKey is the kong.ctx.shared key under which the authenticated
// identity travels between plugins, as the JSON of identity.Identity in a
// string (so Lua plugins can read it too).
const IdentityKey = "edgeguard.identity"

// Names of the PDK calls the adapter makes, as recorded by Calls.
const (
	CallGetHeaders         = "kong.request.get_headers"
	CallGetMethod          = "kong.request.get_method"
	CallGetPath            = "kong.request.get_path"
	CallGetForwardedIP     = "kong.client.get_forwarded_ip"
	CallClearHeader        = "kong.service.request.clear_header"
	CallSetHeaders         = "kong.service.request.set_headers"
	CallResponseSetHeaders = "kong.response.set_headers"
	CallExit               = "kong.response.exit"
	CallSharedGet          = "kong.ctx.shared.get"
	CallSharedSet          = "kong.ctx.shared.set"
	CallAuthenticate       = "kong.client.authenticate"
)

// ErrPDK is wrapped by every error Failed and Flush return: a PDK call
// failed (under Kong: the socket to the worker).
var ErrPDK = errors.New("pdk call failed")

// Access is the Kong access-phase handler of a pipeline plugin: the
// plugin's pipeline (provisioned on first use) runs on a new Adapter, or the
// misconfigured answer when its configuration is invalid; the outcome and
// the PDK call count go to the plugin metrics.
func Access(kong *pdk.PDK, p pipeline.Plugin) *Adapter {
	pl, err := p.Pipeline()
	var a *Adapter
	var out pipeline.Outcome
	if err != nil {
		a = New(kong, 0)
		out = pipeline.Misconfigured(a)
	} else {
		a = New(kong, pl.MaxHeaders())
		out = pipeline.Run(a, pl)
	}
	pluginmetrics.Observe(p.PluginName(), a.CallCount(), out.Status, out.Code)
	return a
}

// Handler is p as go-pdk's access-phase handler (tests: kongtest.Env.Access).
func Handler(p pipeline.Plugin) interface{ Access(*pdk.PDK) } { return handler{p} }

type handler struct{ p pipeline.Plugin }

func (h handler) Access(kong *pdk.PDK) { Access(kong, h.p) }

// Adapter serves one request's Exchange from go-pdk.
type Adapter struct {
	kong *pdk.PDK
	max  int

	callBuf [8]string
	calls   []string

	headers     map[string][]string
	headersRead bool

	method, path, clientIP             string
	methodRead, pathRead, clientIPRead bool

	ident     *identity.Identity
	identRead bool

	exitStatus int

	// the buffered upstream and response header writes
	exchange.Buffer
	err error
}

var _ exchange.Exchange = (*Adapter)(nil)

// New returns an Adapter for the request kong is serving, reading at most
// maxHeaders+1 header values (exchange.ClampMaxHeaders). It makes no PDK
// call.
func New(kong *pdk.PDK, maxHeaders int) *Adapter {
	a := &Adapter{kong: kong, max: exchange.ClampMaxHeaders(maxHeaders)}
	a.calls = a.callBuf[:0]
	return a
}

// Failed returns the first PDK failure of this request (wrapping ErrPDK), or
// nil. A failed read is answered as absent or empty, so a plugin must not
// let a request through when Failed is set; Serve checks it.
func (a *Adapter) Failed() error { return a.err }

// CallCount is the number of PDK calls made so far.
func (a *Adapter) CallCount() int { return len(a.calls) }

// Calls returns the PDK calls made so far, in order.
func (a *Adapter) Calls() []string {
	return append([]string(nil), a.calls...)
}

func (a *Adapter) record(call string) { a.calls = append(a.calls, call) }

func (a *Adapter) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}

func (a *Adapter) readHeaders() {
	if a.headersRead {
		return
	}
	a.headersRead = true
	a.record(CallGetHeaders)
	h, err := a.kong.Request.GetHeaders(a.max + 1)
	if err != nil {
		a.fail(fmt.Errorf("%w: %s: %w", ErrPDK, CallGetHeaders, err))
		a.headers = map[string][]string{}
		return
	}
	a.headers = lowerKeys(h)
}

// lowerKeys returns h with ASCII-lower-cased names. Kong already sends them
// lower-cased, so this normally returns h itself.
func lowerKeys(h map[string][]string) map[string][]string {
	if h == nil {
		return map[string][]string{}
	}
	clean := true
	for k := range h {
		if headername.Lower(k) != k {
			clean = false
			break
		}
	}
	if clean {
		return h
	}
	out := make(map[string][]string, len(h))
	for k, v := range h {
		lk := headername.Lower(k)
		out[lk] = append(out[lk], v...)
	}
	return out
}

// Header returns the first value of the named client header, any case.
func (a *Adapter) Header(name string) string {
	a.readHeaders()
	if v := a.headers[headername.Lower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Headers returns every client header (at most maxHeaders+1 values), names
// lower-cased. Callers must not modify the map.
func (a *Adapter) Headers() map[string][]string {
	a.readHeaders()
	return a.headers
}

func (a *Adapter) readString(call string, done *bool, dst *string, get func() (string, error)) string {
	if !*done {
		*done = true
		a.record(call)
		v, err := get()
		if err != nil {
			a.fail(fmt.Errorf("%w: %s: %w", ErrPDK, call, err))
			v = ""
		}
		*dst = v
	}
	return *dst
}

// Method returns the request method (one kong.request.get_method call).
func (a *Adapter) Method() string {
	return a.readString(CallGetMethod, &a.methodRead, &a.method, a.kong.Request.GetMethod)
}

// Path returns the request path (one kong.request.get_path call).
func (a *Adapter) Path() string {
	return a.readString(CallGetPath, &a.pathRead, &a.path, a.kong.Request.GetPath)
}

// ClientIP returns the client address after Kong's trusted_ips/real_ip rules
// (one kong.client.get_forwarded_ip call).
func (a *Adapter) ClientIP() string {
	return a.readString(CallGetForwardedIP, &a.clientIPRead, &a.clientIP, a.kong.Client.GetForwardedIp)
}

// Exit ends the request in one kong.response.exit call, with the buffered
// response headers merged under headers (exchange.ExitHeaders). Later calls
// and writes are ignored, and Flush does nothing.
func (a *Adapter) Exit(status int, body []byte, headers map[string]string) {
	if !a.MarkExited() {
		return
	}
	a.exitStatus = status
	merged := exchange.ExitHeaders(a.Response, headers)
	h := make(map[string][]string, len(merged))
	for k, v := range merged {
		h[k] = []string{v}
	}
	a.Reset()
	a.record(CallExit)
	a.kong.Response.Exit(status, body, h)
}

// ExitStatus is the status of the Exit call (0 when the request went on).
func (a *Adapter) ExitStatus() int { return a.exitStatus }

// Flush sends the buffered writes: one kong.service.request.clear_header per
// cleared name, except names also being set (set_headers overrides a header
// of the same name in any case, though not one spelled with '_' for '-'),
// then one kong.service.request.set_headers for all upstream sets, then one
// kong.response.set_headers for all response headers. Nothing is sent when
// nothing is buffered, and nothing after Exit. The buffers are emptied.
func (a *Adapter) Flush() error {
	if a.Exited() {
		return nil
	}
	clears, upstream, response := a.Clears, a.Upstream, a.Response
	a.Reset()

	for _, name := range clears {
		if exchange.IndexHeader(upstream, name) >= 0 {
			continue
		}
		a.record(CallClearHeader)
		if err := a.kong.ServiceRequest.ClearHeader(name); err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrPDK, CallClearHeader, err)
			a.fail(err)
			return err
		}
	}
	if len(upstream) > 0 {
		a.record(CallSetHeaders)
		if err := a.kong.ServiceRequest.SetHeaders(toMap(upstream)); err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrPDK, CallSetHeaders, err)
			a.fail(err)
			return err
		}
	}
	if len(response) > 0 {
		a.record(CallResponseSetHeaders)
		if err := a.kong.Response.SetHeaders(toMap(response)); err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrPDK, CallResponseSetHeaders, err)
			a.fail(err)
			return err
		}
	}
	return nil
}

// Authenticated returns the identity an earlier plugin recorded in
// kong.ctx.shared (one kong.ctx.shared.get call, cached). An absent,
// non-string or invalid value, or one without a subject, is no identity.
func (a *Adapter) Authenticated() (*identity.Identity, bool) {
	if !a.identRead {
		a.identRead = true
		a.record(CallSharedGet)
		v, err := a.kong.Ctx.GetSharedAny(IdentityKey)
		if err != nil {
			a.fail(fmt.Errorf("%w: %s: %w", ErrPDK, CallSharedGet, err))
		} else if s, ok := v.(string); ok && s != "" {
			var id identity.Identity
			if json.Unmarshal([]byte(s), &id) == nil && id.Subject != "" {
				a.ident = &id
			}
		}
	}
	return a.ident, a.ident != nil
}

// SetAuthenticated records id in kong.ctx.shared for later plugins (one
// kong.ctx.shared.set call); Authenticated then returns it without a call.
// A nil id is ignored.
func (a *Adapter) SetAuthenticated(id *identity.Identity) {
	if a.Exited() || id == nil {
		return
	}
	b, err := json.Marshal(id)
	if err != nil { // cannot happen: Identity has only plain fields
		a.fail(fmt.Errorf("encode identity: %w", err))
		return
	}
	a.record(CallSharedSet)
	if err := a.kong.Ctx.SetShared(IdentityKey, string(b)); err != nil {
		a.fail(fmt.Errorf("%w: %s: %w", ErrPDK, CallSharedSet, err))
		return
	}
	a.ident, a.identRead = id, true
}

// AuthenticateConsumer tells Kong who the request is (one
// kong.client.authenticate call), so Kong's own plugins and logs see the
// consumer and credential. The consumer need not exist in Kong's database.
func (a *Adapter) AuthenticateConsumer(consumerID, username, credentialID string) {
	if a.Exited() || consumerID == "" {
		return
	}
	a.record(CallAuthenticate)
	err := a.kong.Client.Authenticate(
		&entities.Consumer{Id: consumerID, Username: username, CustomId: consumerID},
		&client.AuthenticatedCredential{Id: credentialID, ConsumerId: consumerID})
	if err != nil {
		a.fail(fmt.Errorf("%w: %s: %w", ErrPDK, CallAuthenticate, err))
	}
}

func toMap(list []exchange.Header) map[string][]string {
	m := make(map[string][]string, len(list))
	for _, h := range list {
		m[h.Name] = []string{h.Value}
	}
	return m
}

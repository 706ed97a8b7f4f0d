// Package kongadapter is the Kong adapter of the plugin host port: it serves an
// exchange.Exchange from go-pdk with the fewest PDK calls the features allow,
// and records every call it makes so tests can assert the exact list.
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
// ("use of closed network connection"). What must still be read when a
// request is answered (an audit event's client address and path) is read in
// the Options.OnExit hook, which runs before the exit is issued.
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
)

// Header-count limits. Kong's kong.request.get_headers(max) stops silently
// at max headers and refuses max > 1000, so the adapter asks for
// MaxHeaders+1 and MaxHeaders is at most 999.
const (
	DefaultMaxHeaders = 100
	MaxMaxHeaders     = 999
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

// Options tune an Adapter.
type Options struct {
	// MaxHeaders is the most header values a request may carry (default
	// 100, valid 1..999; values above 999 are clamped to 999). More makes
	// TooManyHeaders true.
	MaxHeaders int
	// OnExit, when set, is called once when the request is being ended
	// (Exit, from the handler or Serve's fail-closed answer), with its
	// status, BEFORE kong.response.exit is issued: Kong closes the PDK event
	// with the exit, so this is the last moment the request can be read.
	// Reads through the Adapter are lazy and recorded as usual. Leave it
	// nil when nothing needs reading (no call is added then); a panic in it
	// is a failure (Failed), never a lost exit.
	OnExit func(a *Adapter, status int)
}

func (o Options) maxHeaders() int {
	switch {
	case o.MaxHeaders <= 0:
		return DefaultMaxHeaders
	case o.MaxHeaders > MaxMaxHeaders:
		return MaxMaxHeaders
	}
	return o.MaxHeaders
}

// Adapter serves one request's Exchange from go-pdk.
type Adapter struct {
	kong   *pdk.PDK
	max    int
	onExit func(*Adapter, int)

	callBuf [8]string
	calls   []string

	headers     map[string][]string
	headersRead bool
	tooMany     bool

	method, path, clientIP             string
	methodRead, pathRead, clientIPRead bool

	ident     *identity.Identity
	identRead bool

	exitStatus int
	denial     string
	refused    *identity.Identity // who a 403 refused (exchange.Forbid)

	// the buffered upstream and response header writes
	exchange.Buffer
	err error
}

var _ exchange.Exchange = (*Adapter)(nil)

// New returns an Adapter for the request kong is serving. It makes no PDK
// call.
func New(kong *pdk.PDK, opts Options) *Adapter {
	a := &Adapter{kong: kong, max: opts.maxHeaders(), onExit: opts.OnExit}
	a.calls = a.callBuf[:0]
	return a
}

// Serve runs handle on a new Adapter and then flushes its buffered writes.
// It fails closed: when a PDK read failed (Failed), when Flush fails, or when
// handle panics, and the request has not been ended by handle, the client
// gets 500 {"error":{"code":"edge_error",...}} and the buffered upstream
// writes are dropped. Serve returns the Adapter so the caller (and tests)
// can read Calls and Failed; logging is the caller's choice.
func Serve(kong *pdk.PDK, opts Options, handle func(exchange.Exchange)) *Adapter {
	a := New(kong, opts)
	if !a.run(handle) {
		a.failClosed()
		return a
	}
	if a.Exited() {
		return a
	}
	if a.err != nil {
		a.failClosed()
		return a
	}
	if err := a.Flush(); err != nil {
		a.failClosed()
	}
	return a
}

// run calls handle and reports false when it panicked.
func (a *Adapter) run(handle func(exchange.Exchange)) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			a.fail(fmt.Errorf("plugin handler panicked: %v", r))
			ok = false
		}
	}()
	handle(a)
	return true
}

func (a *Adapter) failClosed() {
	a.Upstream, a.Clears = nil, nil
	exchange.Deny(a, 500, "edge_error", "the gateway could not process the request", nil)
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
	n := 0
	for _, v := range a.headers {
		n += len(v)
	}
	a.tooMany = n > a.max
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

// Headers returns every client header (at most MaxHeaders+1 values), names
// lower-cased. Callers must not modify the map.
func (a *Adapter) Headers() map[string][]string {
	a.readHeaders()
	return a.headers
}

// TooManyHeaders reports that the request carries more than MaxHeaders
// header values (Headers is then incomplete).
func (a *Adapter) TooManyHeaders() bool {
	a.readHeaders()
	return a.tooMany
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
// response headers merged under headers (headers win), after the OnExit
// hook. Later calls and writes are ignored, and Flush does nothing.
func (a *Adapter) Exit(status int, body []byte, headers map[string]string) {
	if !a.MarkExited() {
		return
	}
	a.exitStatus = status
	if a.onExit != nil {
		a.runOnExit(status)
	}
	h := make(map[string][]string, len(a.Response)+len(headers))
	for _, r := range a.Response {
		if !hasFold(headers, r.Name) {
			h[r.Name] = []string{r.Value}
		}
	}
	for k, v := range headers {
		h[k] = []string{v}
	}
	a.Reset()
	a.record(CallExit)
	a.kong.Response.Exit(status, body, h)
}

// runOnExit calls the OnExit hook; a panic in it is recorded as a failure
// and the exit still goes out.
func (a *Adapter) runOnExit(status int) {
	defer func() {
		if r := recover(); r != nil {
			a.fail(fmt.Errorf("on-exit hook panicked: %v", r))
		}
	}()
	a.onExit(a, status)
}

// ExitStatus is the status of the Exit call (0 when the request went on).
func (a *Adapter) ExitStatus() int { return a.exitStatus }

// RecordDenial notes the error code of the answer (exchange.Deny calls it),
// for metrics.
func (a *Adapter) RecordDenial(code string) { a.denial = code }

// Denial is the error code of the answer, "" when the request went on.
func (a *Adapter) Denial() string { return a.denial }

// RecordRefused notes the identity a 403 refused (exchange.Forbid calls it).
func (a *Adapter) RecordRefused(id *identity.Identity) { a.refused = id }

// Refused is the identity a 403 refused, or nil.
func (a *Adapter) Refused() *identity.Identity { return a.refused }

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

// NoPriorIdentity tells the adapter that no identity was recorded in
// kong.ctx.shared before the current handler chain (the all-in-one plugin
// runs first and holds every edgeguard auth step), so Authenticated answers
// from memory without a kong.ctx.shared.get round trip.
func (a *Adapter) NoPriorIdentity() {
	if !a.identRead {
		a.ident, a.identRead = nil, true
	}
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

func hasFold(m map[string]string, name string) bool {
	for k := range m {
		if headername.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func toMap(list []exchange.Header) map[string][]string {
	m := make(map[string][]string, len(list))
	for _, h := range list {
		m[h.Name] = []string{h.Value}
	}
	return m
}

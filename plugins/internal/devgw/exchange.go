package devgw

import (
	"net/http"
	"net/netip"

	"github.com/edgeguard/edgeguard/pkg/clientip"
	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongx"
)

// Exchange is the dev gateway's host of the plugin port: one request
// passing through it, served from the *http.Request. It keeps the Kong
// adapter's (kongx) semantics where plugins can tell:
//
//   - header names are lower-cased with ASCII rules (the Host header
//     included, as Kong's get_headers has it), and header-name comparisons
//     for writes ignore ASCII case only (never Unicode folding);
//   - upstream clears and sets and response headers are buffered; a clear
//     drops an earlier set of the same name, a set replaces one in any case;
//     they are applied to the outgoing request and to the client response
//     (proxied, exit or gateway error alike), the edge's values winning;
//   - Exit merges the buffered response headers under its own (its own
//     win); every write after Exit is ignored;
//   - each plugin gets its own turn (beginPlugin), as under Kong each plugin
//     has its own adapter: its header limit (TooManyHeaders) and whether it
//     sees identities recorded before it (NoPriorIdentity);
//   - the identity travels in this per-request struct (kong.ctx.shared under
//     Kong), never in a header.
//
// An Exchange is not safe for concurrent use; the gateway uses it on the
// request's goroutine only.
type Exchange struct {
	r       *http.Request
	path    string
	trusted []netip.Prefix

	headers  map[string][]string
	nHeaders int
	max      int

	clientIP     string
	clientIPRead bool
	// oneForwardedFor: the global client-ip plugin runs; the upstream's
	// X-Forwarded-For is ClientIP alone.
	oneForwardedFor bool

	// the buffered upstream and response header writes
	exchange.Buffer
	adds []exchange.Header // appended, not replaced (cors' Vary)

	exitStatus  int
	exitBody    []byte
	exitHeaders []exchange.Header

	ident     *identity.Identity
	own       *identity.Identity // set during this plugin's turn
	fresh     bool               // NoPriorIdentity: ignore identities set before this turn
	identRead bool

	consumer Consumer
}

// Consumer is what a plugin told the host with AuthenticateConsumer (Kong:
// kong.client.authenticate); the dev gateway logs the consumer id.
type Consumer struct {
	ID, Username, CredentialID string
}

var _ exchange.Exchange = (*Exchange)(nil)

// newExchange returns the Exchange of r, whose normalized path is path;
// trusted are the proxies whose X-Forwarded-For is believed.
func newExchange(r *http.Request, path string, trusted []netip.Prefix) *Exchange {
	return &Exchange{r: r, path: path, trusted: trusted, max: kongx.DefaultMaxHeaders}
}

// beginPlugin starts a plugin's turn: its header limit (as kongx.Options:
// default 100, at most 999) and a fresh view of NoPriorIdentity.
func (e *Exchange) beginPlugin(maxHeaders int) {
	switch {
	case maxHeaders <= 0:
		maxHeaders = kongx.DefaultMaxHeaders
	case maxHeaders > kongx.MaxMaxHeaders:
		maxHeaders = kongx.MaxMaxHeaders
	}
	e.max = maxHeaders
	e.own, e.fresh, e.identRead = nil, false, false
}

func (e *Exchange) readHeaders() {
	if e.headers != nil {
		return
	}
	h := make(map[string][]string, len(e.r.Header)+1)
	n := 0
	for k, v := range e.r.Header {
		lk := headername.Lower(k)
		h[lk] = append(h[lk], v...)
		n += len(v)
	}
	if e.r.Host != "" {
		h["host"] = append(h["host"], e.r.Host)
		n++
	}
	e.headers, e.nHeaders = h, n
}

// Header returns the first value of the named client header, any case.
func (e *Exchange) Header(name string) string {
	e.readHeaders()
	if v := e.headers[headername.Lower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Headers returns every client header, names lower-cased. Callers must not
// modify the map.
func (e *Exchange) Headers() map[string][]string {
	e.readHeaders()
	return e.headers
}

// TooManyHeaders reports that the request carries more header values than
// the current plugin's limit (Kong's adapter would have read only limit+1).
func (e *Exchange) TooManyHeaders() bool {
	e.readHeaders()
	return e.nHeaders > e.max
}

// Method returns the request method.
func (e *Exchange) Method() string { return e.r.Method }

// Path returns the normalized request path (no query), as Kong's
// kong.request.get_path.
func (e *Exchange) Path() string { return e.path }

// ClientIP returns the client address: the rightmost X-Forwarded-For hop
// that is not a trusted proxy when the TCP peer is trusted, else the peer
// (pkg/clientip). "" when the peer address is unusable.
func (e *Exchange) ClientIP() string {
	if !e.clientIPRead {
		e.clientIPRead = true
		if a := clientip.FromForwarded(e.r.RemoteAddr, e.r.Header.Values("X-Forwarded-For"), e.trusted); a.IsValid() {
			e.clientIP = a.Unmap().WithZone("").String()
		}
	}
	return e.clientIP
}

// addResponseHeader buffers a response header value that is appended to the
// response's own lines of that name (cors' Vary: Origin).
func (e *Exchange) addResponseHeader(name, value string) {
	if e.Exited() {
		return
	}
	e.adds = append(e.adds, exchange.Header{Name: name, Value: value})
}

// Exit ends the request with this response, the buffered response headers
// merged under headers (headers win). Later calls and writes are ignored.
func (e *Exchange) Exit(status int, body []byte, headers map[string]string) {
	if !e.MarkExited() {
		return
	}
	e.exitStatus, e.exitBody = status, body
	for _, r := range e.Response {
		if !hasFold(headers, r.Name) {
			e.exitHeaders = append(e.exitHeaders, r)
		}
	}
	for k, v := range headers {
		e.exitHeaders = append(e.exitHeaders, exchange.Header{Name: k, Value: v})
	}
	e.Reset()
}

// Authenticated returns the identity an earlier plugin (or this one)
// recorded for this request — never anything from a request header. After
// NoPriorIdentity it returns only what the current plugin recorded.
func (e *Exchange) Authenticated() (*identity.Identity, bool) {
	id := e.ident
	if e.fresh {
		id = e.own
	}
	e.identRead = true
	if id == nil || id.Subject == "" {
		return nil, false
	}
	return id, true
}

// SetAuthenticated records id for later plugins. A nil id is ignored.
func (e *Exchange) SetAuthenticated(id *identity.Identity) {
	if e.Exited() || id == nil {
		return
	}
	e.ident, e.own, e.identRead = id, id, true
}

// NoPriorIdentity tells the host that no identity was recorded before the
// current plugin (the all-in-one plugin holds every auth step): as with
// kongx, Authenticated then answers only what this plugin records, unless
// it already read the shared identity.
func (e *Exchange) NoPriorIdentity() {
	if !e.identRead {
		e.fresh = true
	}
}

// AuthenticateConsumer records who the request is, for the access log.
func (e *Exchange) AuthenticateConsumer(consumerID, username, credentialID string) {
	if e.Exited() || consumerID == "" {
		return
	}
	e.consumer = Consumer{ID: consumerID, Username: username, CredentialID: credentialID}
}

// Consumer returns what AuthenticateConsumer recorded (zero: nothing).
func (e *Exchange) Consumer() Consumer { return e.consumer }

// applyUpstream applies the buffered clears, then the sets, to the headers
// of the outgoing request.
func (e *Exchange) applyUpstream(h http.Header) {
	for _, name := range e.Clears {
		deleteFold(h, name)
	}
	for _, u := range e.Upstream {
		setFold(h, u.Name, u.Value)
	}
}

// applyResponse applies the buffered response headers to a response the
// gateway did not produce with Exit (a proxied answer, a gateway error):
// the edge's values replace the upstream's of the same name; appended
// values join them.
func (e *Exchange) applyResponse(h http.Header) {
	for _, r := range e.Response {
		setFold(h, r.Name, r.Value)
	}
	e.applyAdds(h)
}

func (e *Exchange) applyAdds(h http.Header) {
	for _, a := range e.adds {
		h.Add(a.Name, a.Value)
	}
}

// writeExit writes the Exit response.
func (e *Exchange) writeExit(w http.ResponseWriter) {
	h := w.Header()
	for _, x := range e.exitHeaders {
		setFold(h, x.Name, x.Value)
	}
	e.applyAdds(h)
	w.WriteHeader(e.exitStatus)
	if len(e.exitBody) > 0 {
		_, _ = w.Write(e.exitBody)
	}
}

// responseHeader returns the buffered (or exit) response header name.
func (e *Exchange) responseHeader(name string) string {
	list := e.Response
	if e.Exited() {
		list = e.exitHeaders
	}
	if i := exchange.IndexHeader(list, name); i >= 0 {
		return list[i].Value
	}
	return ""
}

func hasFold(m map[string]string, name string) bool {
	for k := range m {
		if headername.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// setFold replaces every line of name (any ASCII case) with one value, under
// the canonical key (so http.Header's methods find it).
func setFold(h http.Header, name, value string) {
	deleteFold(h, name)
	h[http.CanonicalHeaderKey(name)] = []string{value}
}

func deleteFold(h http.Header, name string) {
	for k := range h {
		if headername.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

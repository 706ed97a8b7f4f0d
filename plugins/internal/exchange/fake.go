package exchange

import (
	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

// Fake is an in-memory Exchange for unit tests of plugin logic. It behaves
// like the Kong adapter where that matters for security: header names are
// lower-cased with ASCII rules only (as nginx does), header-name comparisons
// for upstream writes ignore ASCII case only (never Unicode folding), and
// every write after Exit is ignored.
//
// The exported fields are the observable results; tests may also preset
// ClientAddr, Identity, FailWith and FlushErr before running a plugin on it.
type Fake struct {
	method  string
	path    string
	headers map[string][]string

	// ClientAddr is what ClientIP returns (default "203.0.113.7").
	ClientAddr string
	// FailWith is what Failed returns (a host call that failed).
	FailWith error
	// FlushErr is what Flush returns; Flushed records that it was called.
	FlushErr error
	Flushed  bool

	// Upstream holds the headers set on the upstream request, names as the
	// plugin gave them (a later set of the same name in another case
	// replaces the earlier one).
	Upstream map[string]string
	// Cleared lists, in order, the names passed to ClearUpstreamHeader.
	Cleared []string
	// Response holds the headers set on the client response.
	Response map[string]string

	// ExitStatus, ExitBody and ExitHeaders record the Exit call (status 0:
	// no Exit). ExitHeaders already include the buffered Response headers,
	// as the Kong adapter sends them.
	ExitStatus  int
	ExitBody    []byte
	ExitHeaders map[string]string

	// Identity is what SetAuthenticated stored and Authenticated returns.
	Identity *identity.Identity
	// Consumer records AuthenticateConsumer: consumer id, username and
	// credential id (empty: not called).
	Consumer [3]string

	exited bool
}

var _ Exchange = (*Fake)(nil)

// NewFake returns a Fake for a request. Header names are lower-cased (ASCII
// only); names that collide once lower-cased have their values merged.
func NewFake(method, path string, headers map[string][]string) *Fake {
	h := make(map[string][]string, len(headers))
	for name, values := range headers {
		k := headername.Lower(name)
		h[k] = append(h[k], values...)
	}
	return &Fake{
		method:     method,
		path:       path,
		headers:    h,
		ClientAddr: "203.0.113.7",
		Upstream:   map[string]string{},
		Response:   map[string]string{},
	}
}

// Header returns the first value of the named header, in any ASCII case.
func (f *Fake) Header(name string) string {
	if v := f.headers[headername.Lower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Headers returns all request headers, names lower-cased.
func (f *Fake) Headers() map[string][]string { return f.headers }

// Method returns the request method.
func (f *Fake) Method() string { return f.method }

// Path returns the request path.
func (f *Fake) Path() string { return f.path }

// ClientIP returns ClientAddr.
func (f *Fake) ClientIP() string { return f.ClientAddr }

// SetUpstreamHeader records an upstream header, replacing an earlier one of
// the same name in any ASCII case.
func (f *Fake) SetUpstreamHeader(name, value string) {
	if f.exited {
		return
	}
	deleteFold(f.Upstream, name)
	f.Upstream[name] = value
}

// ClearUpstreamHeader records the name and drops an earlier upstream set of
// the same name.
func (f *Fake) ClearUpstreamHeader(name string) {
	if f.exited {
		return
	}
	deleteFold(f.Upstream, name)
	f.Cleared = append(f.Cleared, name)
}

// SetResponseHeader records a response header, replacing an earlier one of
// the same name in any ASCII case.
func (f *Fake) SetResponseHeader(name, value string) {
	if f.exited {
		return
	}
	deleteFold(f.Response, name)
	f.Response[name] = value
}

// Exit records the response; the buffered Response headers are merged into
// ExitHeaders, headers given here winning.
func (f *Fake) Exit(status int, body []byte, headers map[string]string) {
	if f.exited {
		return
	}
	f.exited = true
	f.ExitStatus = status
	f.ExitBody = body
	buffered := make([]Header, 0, len(f.Response))
	for k, v := range f.Response {
		buffered = append(buffered, Header{k, v})
	}
	f.ExitHeaders = ExitHeaders(buffered, headers)
}

// Flush records the call (Flushed) and returns FlushErr.
func (f *Fake) Flush() error {
	f.Flushed = true
	return f.FlushErr
}

// Failed returns FailWith.
func (f *Fake) Failed() error { return f.FailWith }

// Exited reports whether Exit was called.
func (f *Fake) Exited() bool { return f.exited }

// Authenticated returns Identity.
func (f *Fake) Authenticated() (*identity.Identity, bool) {
	return f.Identity, f.Identity != nil
}

// SetAuthenticated stores id in Identity.
func (f *Fake) SetAuthenticated(id *identity.Identity) {
	if f.exited {
		return
	}
	f.Identity = id
}

// AuthenticateConsumer records the consumer (ignored after Exit).
func (f *Fake) AuthenticateConsumer(consumerID, username, credentialID string) {
	if f.exited {
		return
	}
	f.Consumer = [3]string{consumerID, username, credentialID}
}

// UpstreamHeader returns the upstream header set under name in any ASCII
// case, and whether there is one.
func (f *Fake) UpstreamHeader(name string) (string, bool) {
	for k, v := range f.Upstream {
		if headername.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// WasCleared reports whether ClearUpstreamHeader was called with exactly
// this name (as it appears in Headers).
func (f *Fake) WasCleared(name string) bool {
	for _, c := range f.Cleared {
		if c == name {
			return true
		}
	}
	return false
}

func deleteFold(m map[string]string, name string) {
	for k := range m {
		if headername.EqualFold(k, name) {
			delete(m, k)
		}
	}
}

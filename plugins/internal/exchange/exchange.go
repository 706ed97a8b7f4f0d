// Package exchange is the plugin host port: the small interface that plugin
// logic is written against, so that Kong (through the go-pdk adapter in
// package kongadapter) and tests run the same code.
//
// It is not a general HTTP abstraction: it offers exactly what the edge's
// access-phase plugins need, shaped so that the Kong adapter can serve it
// with the fewest PDK round trips (headers read once, upstream and response
// header writes buffered and flushed in one call each).
package exchange

import (
	"github.com/edgeguard/edgeguard/pkg/identity"
)

// Exchange is one request passing through the edge, in the access phase.
type Exchange interface {
	// Header returns the first value of the client request header (any
	// case), or "". All headers are read once, on first use.
	Header(name string) string
	// Headers returns every client request header, keys in lower case. The
	// map belongs to the Exchange: callers must not modify it.
	Headers() map[string][]string
	// A host reads at most the pipeline's MaxHeaders+1 header values, so
	// package pipeline can tell a request over the limit (431) from one at
	// it: no stage decides on a partial view.

	Method() string
	Path() string
	// ClientIP is the client address after the host's trusted-proxy rules
	// (Kong: kong.client.get_forwarded_ip).
	ClientIP() string

	// SetUpstreamHeader sets a header on the request sent upstream
	// (buffered; flushed in one call).
	SetUpstreamHeader(name, value string)
	// ClearUpstreamHeader removes a client header from the upstream request.
	// Callers only clear headers that are present.
	ClearUpstreamHeader(name string)
	// SetResponseHeader sets a header on the response to the client
	// (buffered; flushed in one call, or sent with Exit).
	SetResponseHeader(name, value string)
	// Exit ends the request with this response (the buffered response
	// headers merged under headers: ExitHeaders); later writes are ignored.
	Exit(status int, body []byte, headers map[string]string)
	// Exited reports whether Exit was called.
	Exited() bool
	// Flush sends the buffered upstream and response header writes (after
	// the last stage, unless the request exited).
	Flush() error
	// Failed is the first failure of a host call (Kong: a PDK round trip);
	// a failed read answers as absent, so the runtime must not let the
	// request through when it is set.
	Failed() error

	// Authenticated returns the identity an earlier plugin recorded for this
	// request (kong.ctx.shared) — NEVER from request headers.
	Authenticated() (*identity.Identity, bool)
	// SetAuthenticated records the identity for later plugins.
	SetAuthenticated(*identity.Identity)
	// AuthenticateConsumer tells the host who the request is, so its own
	// plugins and logs see a consumer and credential (Kong:
	// kong.client.authenticate; an in-process host records it).
	AuthenticateConsumer(consumerID, username, credentialID string)
}

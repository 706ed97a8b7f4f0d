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
	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// Exchange is one request passing through the edge, in the access phase.
type Exchange interface {
	// Header returns the first value of the client request header (any
	// case), or "". All headers are read once, on first use.
	Header(name string) string
	// Headers returns every client request header, keys in lower case. The
	// map belongs to the Exchange: callers must not modify it.
	Headers() map[string][]string
	// TooManyHeaders reports that the client sent more headers than the
	// host's limit, so Headers may be incomplete: the plugin must refuse the
	// request (431) rather than decide on a partial view.
	TooManyHeaders() bool

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
	// Exit ends the request with this response; later writes are ignored.
	Exit(status int, body []byte, headers map[string]string)
	// Exited reports whether Exit was called.
	Exited() bool

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

// RequestIDHolder is implemented by hosts that keep, for the rest of the
// request, the request id header-guard assigned (kongadapter.Adapter and the dev
// gateway through Buffer, and Fake). Header keeps returning the client's
// header — in the all-in-one plugin every step reads the one get_headers
// snapshot taken before header-guard replaced it — so a later step that
// needs the id the client is answered with (the audit event of a denial)
// asks RequestID.
type RequestIDHolder interface {
	SetRequestID(id string)
	RequestID() string
}

// RequestID is the request id of ex: the one header-guard assigned when the
// host keeps it, else the client's X-Request-ID when it is acceptable
// (requestid.Valid: never a credential-shaped value), else "".
func RequestID(ex Exchange) string {
	if h, ok := ex.(RequestIDHolder); ok {
		if id := h.RequestID(); id != "" {
			return id
		}
	}
	if id := ex.Header(requestid.Header); requestid.Valid(id) {
		return id
	}
	return ""
}

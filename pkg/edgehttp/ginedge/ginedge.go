// Package ginedge adapts package edgehttp to gin: the same authentication,
// policy and JSON error answers, with the identity in the request context
// (edgehttp.IdentityFrom) and in the gin context (Identity), and the
// request's client address as the edge decided it (ClientIP). It is also
// what the services share around gin: the engine (NewEngine), the strict
// JSON request body every service decodes (JSONBody: one decoder, one
// error type, stable codes), and the route-group guard (Guard).
//
// It adds no authentication policy of its own: policies are declared by
// the services next to their route groups; the checks are edgehttp's.
package ginedge

import (
	"fmt"
	"net/http"
	"net/netip"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// contextKey is the gin context key of the identity.
const contextKey = "edgeguard.identity"

// Authenticate returns gin middleware running m: refused requests are
// answered and aborted; allowed ones continue with the identity in
// c.Request's context and in the gin context, and the credential's client
// address (the edge assertion's cip claim) in c.Request's context.
func Authenticate(m *edgehttp.Middleware) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, addr, p := m.CheckClient(c.Request)
		if p != nil {
			edgehttp.WriteProblem(c.Writer, p)
			c.Abort()
			return
		}
		if id != nil {
			c.Request = c.Request.WithContext(edgehttp.WithIdentity(c.Request.Context(), id))
			c.Set(contextKey, id)
		}
		if addr.IsValid() {
			c.Request = c.Request.WithContext(edgehttp.WithClientIP(c.Request.Context(), addr))
		}
		c.Next()
	}
}

// Guard returns the middleware of one route group: auth authenticates
// the request (edgehttp; the service's credential chain) and policy
// decides, refusals answered and logged by edgehttp on log. A nil auth
// means authentication is off (AUTH_ENABLED=false, dev only): every
// request of the group is answered 503 auth_disabled, naming what is
// unavailable ("the media API"). Services call it where they register the
// group, so a route's policy is declared next to the route.
func Guard(auth edgehttp.Authenticator, policy identity.Policy, log zerolog.Logger, what string) (gin.HandlerFunc, error) {
	if auth == nil {
		msg := "authentication is disabled (AUTH_ENABLED=false): " + what + " is unavailable"
		return func(c *gin.Context) { Abort(c, http.StatusServiceUnavailable, "auth_disabled", msg) }, nil
	}
	m, err := edgehttp.New(edgehttp.Config{Authenticator: auth, Policy: policy, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return Authenticate(m), nil
}

// ClientIP is the request's client address for limits, audit and logs:
// the one the edge decided and signed (the verified assertion's cip claim)
// on an authenticated route; else gin's ClientIP — the peer, or, only when
// the peer is one of TRUSTED_PROXIES (the gateway's own addresses), the
// rightmost X-Forwarded-For address that is not (the gateway sends
// exactly one, the client's). "" when neither is an address.
func ClientIP(c *gin.Context) string {
	if a, ok := edgehttp.ClientIPFrom(c.Request.Context()); ok {
		return a.String()
	}
	if a, err := netip.ParseAddr(c.ClientIP()); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ""
}

// Identity returns the identity Authenticate stored for this request.
func Identity(c *gin.Context) (*identity.Identity, bool) {
	if v, ok := c.Get(contextKey); ok {
		if id, ok := v.(*identity.Identity); ok && id != nil {
			return id, true
		}
	}
	return edgehttp.IdentityFrom(c.Request.Context())
}

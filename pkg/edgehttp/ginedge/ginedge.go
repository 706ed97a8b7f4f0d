// Package ginedge adapts package edgehttp to gin: the same authentication,
// policy and JSON error answers, with the identity in the request context
// (edgehttp.IdentityFrom) and in the gin context (Identity).
//
// It adds no policy of its own; everything but the gin glue is in edgehttp.
package ginedge

import (
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/gin-gonic/gin"
)

// contextKey is the gin context key of the identity.
const contextKey = "edgeguard.identity"

// Authenticate returns gin middleware running m: refused requests are
// answered and aborted; allowed ones continue with the identity in
// c.Request's context and in the gin context.
func Authenticate(m *edgehttp.Middleware) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, p := m.Check(c.Request)
		if p != nil {
			edgehttp.WriteProblem(c.Writer, p)
			c.Abort()
			return
		}
		if id != nil {
			c.Request = c.Request.WithContext(edgehttp.WithIdentity(c.Request.Context(), id))
			c.Set(contextKey, id)
		}
		c.Next()
	}
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

// Package ginmetrics records gin requests into httpmetrics, labelled by the
// matched route template (c.FullPath), never the raw path.
package ginmetrics

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
)

// Middleware observes every request of the engine it is used on.
func Middleware(m *httpmetrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.Observe(route, c.Request.Method, c.Writer.Status(), time.Since(start))
	}
}

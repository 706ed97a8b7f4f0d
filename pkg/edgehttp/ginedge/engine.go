package ginedge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics/ginmetrics"
	"github.com/edgeguard/edgeguard/pkg/tracing"
)

// ErrTrustAll refuses a trusted-proxy list that trusts every address.
var ErrTrustAll = errors.New("TRUSTED_PROXIES must not trust every address (0.0.0.0/0, ::/0)")

var ginMode sync.Once

// NewEngine returns the gin engine every edgeguard service starts from:
// release mode; no path redirects; 405 for a known path with another method;
// X-Forwarded-For believed only from the trusted proxies (TRUSTED_PROXIES:
// addresses or CIDR prefixes; none by default; trust-everything refused);
// a server span per request named by its route template (Trace); a
// request id and one access-log line per request (RequestLog); panics
// answered 500 (Recovery); metrics when m is not nil; JSON 404/405.
func NewEngine(log zerolog.Logger, trusted []string, m *httpmetrics.Metrics) (*gin.Engine, error) {
	ginMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	for _, p := range trusted {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, fmt.Errorf("TRUSTED_PROXIES: %q is not an address or CIDR prefix", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx.Bits() == 0 {
			return nil, ErrTrustAll
		}
	}
	if len(trusted) == 0 {
		trusted = nil // trust none
	}
	if err := e.SetTrustedProxies(trusted); err != nil {
		return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	e.Use(Trace(), RequestLog(log), Recovery())
	if m != nil {
		e.Use(ginmetrics.Middleware(m))
	}
	e.NoRoute(func(c *gin.Context) { Abort(c, http.StatusNotFound, "not_found", "no such endpoint") })
	e.NoMethod(func(c *gin.Context) {
		Abort(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})
	return e, nil
}

// RequestLog gives every request a request id (X-Request-ID when valid,
// else a new one), echoes it, puts a logger carrying it in the request
// context, and logs one line per request: the route template, never the raw
// path, the query (a signed URL's sig, an OAuth code), headers or body.
func RequestLog(base zerolog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := edgehttp.RequestID(c.Request)
		c.Header(edgehttp.HeaderRequestID, id)
		lc := base.With().Str("request_id", id)
		if sc := trace.SpanContextFromContext(c.Request.Context()); sc.IsValid() {
			lc = lc.Str("trace_id", sc.TraceID().String())
		}
		l := lc.Logger()
		c.Request = c.Request.WithContext(l.WithContext(c.Request.Context()))
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		lvl := zerolog.InfoLevel
		if quietRoutes[route] {
			lvl = zerolog.DebugLevel
		}
		l.WithLevel(lvl).Str("method", c.Request.Method).Str("route", route).
			Int("status", c.Writer.Status()).Int("bytes_out", c.Writer.Size()).
			Dur("duration", time.Since(start)).Str("client_ip", ClientIP(c)).Msg("request")
	}
}

// quietRoutes are the internal listener's probe and scrape routes: logged
// at debug level and never traced.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// Trace starts the request's server span (pkg/tracing): the incoming W3C
// traceparent (Kong's opentelemetry plugin) is its parent, its name is the
// method and the route template (c.FullPath, "unmatched" when none: never
// the raw path or the query), and it records the status. With tracing off
// the span is a no-op one that still carries the incoming trace context, so
// outgoing requests (tracing.Transport) pass Kong's trace on. /healthz,
// /readyz and /metrics are not traced.
func Trace() gin.HandlerFunc {
	return func(c *gin.Context) {
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		if quietRoutes[route] {
			c.Next() // probes and scrapes every few seconds: no trace each
			return
		}
		ctx, span := tracing.StartServer(c.Request, route)
		c.Request = c.Request.WithContext(ctx)
		defer func() { tracing.EndServer(span, c.Writer.Status()) }()
		c.Next()
	}
}

// Recovery answers a panic with 500 internal_error instead of dropping the
// connection (a bug, never bad input: inputs are validated). The panic
// value's type is logged, never its content.
func Recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				Logger(c).Error().Str("panic", fmt.Sprintf("%T", r)).Msg("handler panicked")
				if !c.Writer.Written() {
					Abort(c, http.StatusInternalServerError, "internal_error", "internal error")
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// Logger is the request's logger (carrying its request id).
func Logger(c *gin.Context) *zerolog.Logger { return zerolog.Ctx(c.Request.Context()) }

// Abort answers {"error":{"code","message"}} and stops the chain.
func Abort(c *gin.Context, status int, code, message string) {
	edgehttp.WriteError(c.Writer, status, code, message)
	c.Abort()
}

// Ready is a /readyz handler: 200 when check (bounded to 2 s) passes or is
// nil, else 503 not_ready naming what is unavailable (what is logged with
// the error; the client sees only what).
func Ready(check func(context.Context) error, what string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if check != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
			defer cancel()
			if err := check(ctx); err != nil {
				Logger(c).Warn().Err(err).Msg("not ready")
				Abort(c, http.StatusServiceUnavailable, "not_ready", what+" unavailable")
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

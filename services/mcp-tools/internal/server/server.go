// Package server is mcp-tools' HTTP layer (gin): the public router — the MCP
// endpoint /v1/mcp (streamable HTTP, stateless, JSON answers) and the admin
// approval endpoints /v1/approvals — and the internal router (/healthz,
// /readyz) on its own port. Every public route is authenticated by
// pkg/edgehttp before anything reads the body; bodies are bounded; errors
// are {"error":{"code","message"}}; every request is logged once with its
// request id — never a header, a query string, a body or a token.
package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics/ginmetrics"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// Paths.
const (
	PathMCP       = "/v1/mcp"
	PathApprovals = "/v1/approvals"
)

// MaxDecisionBody bounds POST /v1/approvals/{id} bodies.
const MaxDecisionBody = 1 << 10

// Config configures the routers.
type Config struct {
	// MCP is the MCP server; MCPAuth authenticates /v1/mcp (identity
	// required, any role).
	MCP     *mcp.Server
	MCPAuth *edgehttp.Middleware
	// Approvals is the approval store; AdminAuth authenticates
	// /v1/approvals (role admin, auth_methods [jwt]). A nil store serves
	// 404 approvals_disabled (run_python off or approvals not required).
	Approvals *approval.Store
	AdminAuth *edgehttp.Middleware
	// MaxBodyBytes bounds /v1/mcp bodies (MCP_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// TrustedProxies are the gateway addresses or prefixes whose
	// X-Forwarded-For gin believes (none by default; never everything).
	TrustedProxies []string
	Logger         zerolog.Logger
	// Metrics records every request of both routers and is served at
	// /metrics on the internal listener (never routed by Kong). Nil: off.
	Metrics *httpmetrics.Metrics
}

// withMetrics records the engine's requests (before any route is added).
func withMetrics(e *gin.Engine, m *httpmetrics.Metrics) {
	if m != nil {
		e.Use(ginmetrics.Middleware(m))
	}
}

var ginMode sync.Once

// ErrTrustAll refuses a trusted-proxy list that trusts every address.
var ErrTrustAll = errors.New("TRUSTED_PROXIES must not trust every address (0.0.0.0/0, ::/0)")

func newEngine(log zerolog.Logger, trusted []string) (*gin.Engine, error) {
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
	e.Use(requestLog(log), recovery())
	e.NoRoute(func(c *gin.Context) { abort(c, http.StatusNotFound, "not_found", "no such endpoint") })
	e.NoMethod(func(c *gin.Context) {
		abort(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})
	return e, nil
}

// Public returns the public router.
func Public(cfg Config) (http.Handler, error) {
	if cfg.MCP == nil || cfg.MCPAuth == nil || cfg.AdminAuth == nil {
		return nil, errors.New("server: the MCP server and both authentication middlewares are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256 << 10
	}
	e, err := newEngine(cfg.Logger, cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	withMetrics(e, cfg.Metrics)
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return cfg.MCP }, &mcp.StreamableHTTPOptions{
		// Stateless: every POST carries its own credential and is decided
		// alone (X-Edge-Identity is per request); no session table to
		// exhaust or hijack; any replica can answer.
		Stateless:           true,
		JSONResponse:        true,
		MaxRequestBodyBytes: cfg.MaxBodyBytes,
		// A client that goes away cancels its tool call (protocol
		// 2026-07-28 and later; older ones end at the tool timeout).
		PropagateRequestCancellation: true,
		// The SDK refuses a non-loopback Host on a loopback listener (DNS
		// rebinding against unauthenticated local servers). Here every
		// request carries a verified credential, and behind a gateway on
		// the same host (the dev gateway, a sidecar) the Host is the
		// gateway's public name: the check would only break those set-ups.
		DisableLocalhostProtection: true,
	})
	// Authentication first: nothing reads a body for an anonymous caller.
	e.POST(PathMCP, ginedge.Authenticate(cfg.MCPAuth), requireJSON, limitBody(cfg.MaxBodyBytes), gin.WrapH(mcpHandler))

	h := &approvals{store: cfg.Approvals}
	g := e.Group(PathApprovals, ginedge.Authenticate(cfg.AdminAuth))
	g.GET("", h.list)
	g.GET("/:id", h.get)
	g.POST("/:id", h.decide)
	return e, nil
}

// Internal returns the internal router (never routed by Kong).
func Internal(cfg Config) (http.Handler, error) {
	e, err := newEngine(cfg.Logger, nil)
	if err != nil {
		return nil, err
	}
	withMetrics(e, cfg.Metrics)
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ready"}) })
	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}
	return e, nil
}

// requireJSON answers 415 unless the body is declared application/json
// (the streamable HTTP transport's rule, with our JSON error).
func requireJSON(c *gin.Context) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		abort(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	c.Next()
}

// limitBody reads at most max bytes of the body (413 body_too_large past
// it, before the MCP handler sees anything) and hands the rest of the chain
// an in-memory copy.
func limitBody(max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			abort(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body over %d bytes", max))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, max))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				abort(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body over %d bytes", max))
				return
			}
			abort(c, http.StatusBadRequest, "body_unreadable", "the request body could not be read")
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		c.Request.ContentLength = int64(len(body))
		c.Next()
	}
}

// requestLog gives every request a request id (X-Request-ID when valid,
// else a new one), echoes it, puts a logger carrying it in the request
// context, and logs one line per request: no query string, no headers, no
// body.
func requestLog(base zerolog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := edgehttp.RequestID(c.Request)
		c.Header(edgehttp.HeaderRequestID, id)
		l := base.With().Str("request_id", id).Logger()
		c.Request = c.Request.WithContext(l.WithContext(c.Request.Context()))
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		lvl := zerolog.InfoLevel
		if route == "/healthz" || route == "/readyz" {
			lvl = zerolog.DebugLevel
		}
		ev := l.WithLevel(lvl).Str("method", c.Request.Method).Str("route", route).
			Int("status", c.Writer.Status()).Dur("duration", time.Since(start)).Str("client_ip", c.ClientIP())
		if id, ok := ginedge.Identity(c); ok {
			ev = ev.Str("sub", id.Subject).Str("auth_method", id.AuthMethod)
		}
		ev.Msg("request")
	}
}

// recovery answers a panic with 500 internal_error instead of dropping the
// connection (a bug, never bad input: inputs are validated).
func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				logger(c).Error().Str("panic", fmt.Sprintf("%T", r)).Msg("handler panicked")
				if !c.Writer.Written() {
					abort(c, http.StatusInternalServerError, "internal_error", "internal error")
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

func logger(c *gin.Context) *zerolog.Logger { return zerolog.Ctx(c.Request.Context()) }

// abort answers {"error":{"code","message"}} and stops the chain.
func abort(c *gin.Context, status int, code, message string) {
	edgehttp.WriteError(c.Writer, status, code, message)
	c.Abort()
}

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
	"io"
	"mime"
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/identity"
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

// RoleAdmin is the realm role that decides approvals.
const RoleAdmin = "admin"

// MaxDecisionBody bounds POST /v1/approvals/{id} bodies.
const MaxDecisionBody = 1 << 10

// Config configures the routers.
type Config struct {
	// MCP is the MCP server.
	MCP *mcp.Server
	// Authenticator is the credential chain of every public route
	// (X-Edge-Identity and/or the Keycloak JWT; required: identity is
	// always needed here). Each route declares its policy where Public
	// registers it.
	Authenticator edgehttp.Authenticator
	// Approvals is the approval store. A nil store serves 404
	// approvals_disabled (run_python off or approvals not required).
	Approvals *approval.Store
	// MaxBodyBytes bounds /v1/mcp bodies (MCP_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// TrustedProxies are the gateway addresses or prefixes whose
	// X-Forwarded-For gin believes (none by default; never everything).
	TrustedProxies []string
	Logger         zerolog.Logger
	// Metrics records every request of both routers and is served at
	// /metrics on the internal listener (never routed by Kong). Nil: off.
	Metrics *httpmetrics.Metrics
	// Audit receives approval.granted|denied events. Nil: audit off.
	Audit *audit.Emitter
}

// Public returns the public router.
func Public(cfg Config) (http.Handler, error) {
	if cfg.MCP == nil || cfg.Authenticator == nil {
		return nil, errors.New("server: the MCP server and an authenticator are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256 << 10
	}
	e, err := ginedge.NewEngine(cfg.Logger, cfg.TrustedProxies, cfg.Metrics)
	if err != nil {
		return nil, err
	}
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
		// the same host (a sidecar, a test) the Host is the
		// gateway's public name: the check would only break those set-ups.
		DisableLocalhostProtection: true,
	})
	// /v1/mcp: any authenticated identity, any role (each tool decides
	// what it offers). Authentication first: nothing reads a body for an
	// anonymous caller.
	mcpAuth, err := ginedge.Guard(cfg.Authenticator, identity.Policy{}, cfg.Logger, "the MCP endpoint")
	if err != nil {
		return nil, err
	}
	e.POST(PathMCP, mcpAuth, requireJSON, limitBody(cfg.MaxBodyBytes), gin.WrapH(mcpHandler))

	// /v1/approvals: administrators with their own token (role admin,
	// JWT only: an API key never decides an approval).
	adminAuth, err := ginedge.Guard(cfg.Authenticator, identity.Policy{
		RequiredRoles: []string{RoleAdmin},
		AuthMethods:   []string{identity.MethodJWT},
	}, cfg.Logger, "the approval API")
	if err != nil {
		return nil, err
	}
	h := &approvals{store: cfg.Approvals, audit: cfg.Audit}
	g := e.Group(PathApprovals, adminAuth)
	g.GET("", h.list)
	g.GET("/:id", h.get)
	g.POST("/:id", h.decide)
	return e, nil
}

// Internal returns the internal router (never routed by Kong).
func Internal(cfg Config) (http.Handler, error) {
	e, err := ginedge.NewEngine(cfg.Logger, nil, cfg.Metrics)
	if err != nil {
		return nil, err
	}
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
		ginedge.Abort(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	c.Next()
}

// limitBody reads at most max bytes of the body (413 body_too_large past
// it, before the MCP handler sees anything) and hands the rest of the chain
// an in-memory copy.
func limitBody(max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := ginedge.ReadBody(c, max)
		if err != nil {
			fail(c, err)
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		c.Request.ContentLength = int64(len(body))
		c.Next()
	}
}

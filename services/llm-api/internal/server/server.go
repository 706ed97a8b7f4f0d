// Package server is llm-api's HTTP layer (gin): the public router (the
// OpenAI-compatible /v1 routes forwarded by package llmproxy, GET /v1/usage,
// API-key management under /auth/api-keys and the admin routes under
// /v1/admin — audit, budget overrides, usage —, all authenticated by
// pkg/edgehttp; guest
// sessions under /auth/guest-login, /auth/refresh and /auth/logout, limited
// per client address) and the internal router (/internal/api-keys/validate for the edge, /healthz,
// /readyz), which listen on separate ports. It decodes and bounds every
// input, maps package keys' errors to JSON answers with stable codes, and
// logs each request with its request id — never a key, token or secret.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// RoleAdmin is the realm role of /v1/admin/.
const RoleAdmin = "admin"

// Body limits.
const (
	MaxCreateBody   = 16 << 10
	MaxRotateBody   = 1 << 10
	MaxValidateBody = 4 << 10
)

// Config configures the routers.
type Config struct {
	Keys *keys.Service
	// Authenticator is the credential chain of every authenticated route
	// (X-Edge-Identity, then the Keycloak JWT when accepted). Each route
	// group declares its own policy where Public registers it. Nil means
	// AUTH_ENABLED=false (dev only): those routes answer 503 auth_disabled.
	Authenticator edgehttp.Authenticator
	// InternalToken is the X-Internal-Token secret of the validate endpoint
	// (read at every call: a rotated value applies at once), and
	// InternalTokenPrevious the one it replaces, also accepted while set
	// (a rotation's grace window; nil or unset: none).
	InternalToken         *secrets.Value
	InternalTokenPrevious *secrets.Value
	// IncludeEmail adds "email" to validate answers.
	IncludeEmail bool
	// TrustedProxies are the gateway addresses or prefixes whose
	// X-Forwarded-For gin believes (none by default; never everything).
	TrustedProxies []string
	// Guests runs guest login, refresh and logout (/auth/guest-login,
	// /auth/refresh, /auth/logout: no authentication, per-IP limits). Nil:
	// guest sessions are disabled and those routes answer 503
	// guest_login_disabled.
	Guests *guests.Service
	// LLM forwards the OpenAI-compatible routes (/v1/models,
	// /v1/chat/completions, /v1/completions, /v1/embeddings) to the model
	// server (package llmproxy). Nil: LLM_UPSTREAM_URL is unset and those
	// routes answer 503 llm_not_configured.
	LLM http.Handler
	// Audit receives apikey.* and guest.created events. Nil: audit off.
	Audit *audit.Emitter
	// AuditStore serves /v1/admin/audit/events and /stats. Nil: those
	// routes answer 503 audit_disabled.
	AuditStore auditlog.Store
	// Budgets serves the budget overrides (/v1/admin/budgets/users/…),
	// the budgets of GET /v1/usage and checks API keys' own budgets; Usage
	// reads the ledger (GET /v1/usage, /v1/admin/usage). Nil Budgets:
	// LLM_BUDGETS_FILE is unset and those routes answer 503
	// budgets_disabled.
	Budgets *entitlement.Service
	Usage   ledger.Reader
	// Ready reports whether the database is reachable (/readyz).
	Ready  func(ctx context.Context) error
	Logger zerolog.Logger
	// Metrics records every request of both routers and is served at
	// /metrics on the internal listener (never routed by Kong). Nil: off.
	Metrics *httpmetrics.Metrics
}

// Public returns the public router.
func Public(cfg Config) (http.Handler, error) {
	if cfg.Keys == nil {
		return nil, errors.New("server: keys service required")
	}
	if cfg.Budgets != nil && cfg.Usage == nil {
		return nil, errors.New("server: budgets need the usage ledger")
	}
	trusted := cfg.TrustedProxies
	if len(trusted) == 0 {
		trusted = nil
	}
	e, err := ginedge.NewEngine(cfg.Logger, trusted, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	h := &handlers{cfg: cfg}
	var guardErrs []error
	guard := func(p identity.Policy, what string) gin.HandlerFunc {
		g, err := ginedge.Guard(cfg.Authenticator, p, cfg.Logger, what)
		guardErrs = append(guardErrs, err)
		return g
	}
	// /auth/api-keys: JWT only — an API key never manages keys (the
	// edge's assertion for a key-authenticated request says apikey: 403
	// auth_method_not_allowed) — and no guests.
	g := e.Group("/auth/api-keys", guard(identity.Policy{
		AuthMethods:    []string{identity.MethodJWT},
		ForbiddenRoles: []string{identity.RoleGuest},
	}, "API-key management"))
	g.POST("", h.create)
	g.GET("", h.list)
	g.DELETE("/:id", h.revoke)
	g.POST("/:id/rotate", h.rotate)
	// /v1/admin/: its own group (registered before /v1's so the model
	// API's policy never applies to it): JWT only, role admin (the edge
	// enforces the same).
	admin := e.Group("/v1/admin", guard(identity.Policy{
		AuthMethods:   []string{identity.MethodJWT},
		RequiredRoles: []string{RoleAdmin},
	}, "the admin API"))
	admin.GET("/audit/events", h.auditEvents)
	admin.GET("/audit/stats", h.auditStats)
	admin.PUT("/budgets/users/:subject", h.putOverride)
	admin.GET("/budgets/users/:subject", h.getOverride)
	admin.DELETE("/budgets/users/:subject", h.deleteOverride)
	admin.GET("/usage", h.adminUsage)
	// /v1: the model API, for JWTs and API keys, every role, guests
	// included (rate limits are the edge's).
	v1 := e.Group("/v1", guard(identity.Policy{
		AuthMethods: []string{identity.MethodJWT, identity.MethodAPIKey},
	}, "the model API"))
	if err := errors.Join(guardErrs...); err != nil {
		return nil, err
	}
	llm := gin.HandlerFunc(func(c *gin.Context) {
		ginedge.Abort(c, http.StatusServiceUnavailable, "llm_not_configured", "no model server is configured")
	})
	if cfg.LLM != nil {
		llm = gin.WrapH(cfg.LLM)
	}
	v1.GET("/models", llm)
	v1.GET("/usage", h.usage)
	for _, p := range []string{"/chat/completions", "/completions", "/embeddings"} {
		v1.POST(p, llm)
	}
	// guest sessions: no credential (Kong routes them without auth
	// plugins); limited per client address here (package guests)
	if cfg.Guests != nil {
		e.POST("/auth/guest-login", h.guestLogin)
		e.POST("/auth/refresh", h.refresh)
		e.POST("/auth/logout", h.logout)
	} else {
		for _, p := range []string{"/auth/guest-login", "/auth/refresh", "/auth/logout"} {
			e.POST(p, guestsOff)
		}
	}
	return e, nil
}

// Internal returns the internal router (never routed by Kong).
func Internal(cfg Config) (http.Handler, error) {
	if cfg.Keys == nil || len(cfg.InternalToken.Get()) == 0 {
		return nil, errors.New("server: keys service and internal token required")
	}
	e, err := ginedge.NewEngine(cfg.Logger, nil, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	h := &handlers{cfg: cfg}
	e.POST("/internal/api-keys/validate", h.internalAuth, h.validate)
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", ginedge.Ready(cfg.Ready, "database"))
	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}
	return e, nil
}

type handlers struct {
	cfg Config
}

// internalAuth checks X-Internal-Token in constant time against the current
// token and, during a rotation, the previous one (digests compared, both
// always, so neither content, length nor which one matched leaks through
// timing).
func (h *handlers) internalAuth(c *gin.Context) {
	vals := c.Request.Header.Values("X-Internal-Token")
	ok := false
	if len(vals) == 1 {
		ok = TokenMatches([]byte(vals[0]), h.cfg.InternalToken.Get(), h.cfg.InternalTokenPrevious.Get())
	}
	if !ok {
		ginedge.Logger(c).Warn().Str("reason", "internal_auth_failed").Msg("validate call without a valid internal token")
		ginedge.Abort(c, http.StatusUnauthorized, "internal_auth_failed", "missing or wrong internal token")
		return
	}
	c.Next()
}

// TokenMatches reports in constant time whether got is one of the non-empty
// tokens (SHA-256 digests compared, every token checked).
func TokenMatches(got []byte, tokens ...[]byte) bool {
	sum := sha256.Sum256(got)
	match := 0
	for _, t := range tokens {
		if len(t) == 0 {
			continue
		}
		ts := sha256.Sum256(t)
		match |= subtle.ConstantTimeCompare(sum[:], ts[:])
	}
	return match == 1
}

// Package server is llm-api's HTTP layer (gin): the public router (the
// OpenAI-compatible /v1 routes forwarded by package llmproxy and API-key
// management under /auth/api-keys, both authenticated by pkg/edgehttp; guest
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
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics/ginmetrics"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// Body limits.
const (
	MaxCreateBody   = 16 << 10
	MaxRotateBody   = 1 << 10
	MaxValidateBody = 4 << 10
)

// Config configures the routers.
type Config struct {
	Keys *keys.Service
	// Auth authenticates the public API-key routes (policy jwt only, no
	// guests). Nil means AUTH_ENABLED=false (dev only): the routes answer
	// 503 auth_disabled.
	Auth *edgehttp.Middleware
	// InternalToken is the X-Internal-Token secret of the validate endpoint.
	InternalToken []byte
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
	// LLMAuth authenticates the OpenAI-compatible routes: the same
	// credential chain as Auth with a policy accepting both methods (jwt,
	// apikey) and every role, guests included (rate limits are the edge's).
	// Nil: AUTH_ENABLED=false; the routes answer 503 auth_disabled.
	LLMAuth *edgehttp.Middleware
	// Ready reports whether the database is reachable (/readyz).
	Ready  func(ctx context.Context) error
	Logger zerolog.Logger
	// Metrics records every request of both routers and is served at
	// /metrics on the internal listener (never routed by Kong). Nil: off.
	Metrics *httpmetrics.Metrics
}

var ginMode sync.Once

// ErrTrustAll refuses a trusted-proxy list that trusts every address.
var ErrTrustAll = errors.New("TRUSTED_PROXIES must not trust every address (0.0.0.0/0, ::/0)")

func newEngine(cfg *Config, trusted []string) (*gin.Engine, error) {
	ginMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	for _, p := range trusted {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			if a, aerr := netip.ParseAddr(p); aerr == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("TRUSTED_PROXIES: %q is not an address or CIDR prefix", p)
			}
		}
		if pfx.Bits() == 0 {
			return nil, ErrTrustAll
		}
	}
	if err := e.SetTrustedProxies(trusted); err != nil { // nil: trust none
		return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	e.Use(requestLog(cfg.Logger), recovery())
	if cfg.Metrics != nil {
		e.Use(ginmetrics.Middleware(cfg.Metrics))
	}
	e.NoRoute(func(c *gin.Context) { abort(c, http.StatusNotFound, "not_found", "no such endpoint") })
	e.NoMethod(func(c *gin.Context) {
		abort(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})
	return e, nil
}

// Public returns the public router.
func Public(cfg Config) (http.Handler, error) {
	if cfg.Keys == nil {
		return nil, errors.New("server: keys service required")
	}
	trusted := cfg.TrustedProxies
	if len(trusted) == 0 {
		trusted = nil
	}
	e, err := newEngine(&cfg, trusted)
	if err != nil {
		return nil, err
	}
	h := &handlers{cfg: cfg}
	g := e.Group("/auth/api-keys")
	if cfg.Auth != nil {
		g.Use(ginedge.Authenticate(cfg.Auth))
	} else {
		g.Use(func(c *gin.Context) {
			abort(c, http.StatusServiceUnavailable, "auth_disabled", "authentication is disabled (AUTH_ENABLED=false): API-key management is unavailable")
		})
	}
	g.POST("", h.create)
	g.GET("", h.list)
	g.DELETE("/:id", h.revoke)
	g.POST("/:id/rotate", h.rotate)
	v1 := e.Group("/v1")
	if cfg.LLMAuth != nil {
		v1.Use(ginedge.Authenticate(cfg.LLMAuth))
	} else {
		v1.Use(func(c *gin.Context) {
			abort(c, http.StatusServiceUnavailable, "auth_disabled", "authentication is disabled (AUTH_ENABLED=false): the model API is unavailable")
		})
	}
	llm := gin.HandlerFunc(func(c *gin.Context) {
		abort(c, http.StatusServiceUnavailable, "llm_not_configured", "no model server is configured")
	})
	if cfg.LLM != nil {
		llm = gin.WrapH(cfg.LLM)
	}
	v1.GET("/models", llm)
	for _, p := range []string{"/chat/completions", "/completions", "/embeddings"} {
		v1.POST(p, llm)
	}
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
	if cfg.Keys == nil || len(cfg.InternalToken) == 0 {
		return nil, errors.New("server: keys service and internal token required")
	}
	e, err := newEngine(&cfg, nil)
	if err != nil {
		return nil, err
	}
	h := &handlers{cfg: cfg, tokenSum: sha256.Sum256(cfg.InternalToken)}
	e.POST("/internal/api-keys/validate", h.internalAuth, h.validate)
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", h.ready)
	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}
	return e, nil
}

type handlers struct {
	cfg      Config
	tokenSum [32]byte
}

// internalAuth checks X-Internal-Token in constant time (digests compared,
// so neither content nor length leaks through timing).
func (h *handlers) internalAuth(c *gin.Context) {
	vals := c.Request.Header.Values("X-Internal-Token")
	ok := false
	if len(vals) == 1 {
		sum := sha256.Sum256([]byte(vals[0]))
		ok = subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
	}
	if !ok {
		logger(c).Warn().Str("reason", "internal_auth_failed").Msg("validate call without a valid internal token")
		abort(c, http.StatusUnauthorized, "internal_auth_failed", "missing or wrong internal token")
		return
	}
	c.Next()
}

func (h *handlers) ready(c *gin.Context) {
	if h.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := h.cfg.Ready(ctx); err != nil {
			logger(c).Warn().Err(err).Msg("not ready")
			abort(c, http.StatusServiceUnavailable, "not_ready", "database unavailable")
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
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
		l.WithLevel(lvl).Str("method", c.Request.Method).Str("route", route).
			Int("status", c.Writer.Status()).Dur("duration", time.Since(start)).
			Str("client_ip", c.ClientIP()).Msg("request")
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

// fail maps an error of package keys to its answer.
func fail(c *gin.Context, err error) {
	var in *keys.InputError
	var reason keys.Reason
	switch {
	case errors.As(err, &in):
		abort(c, http.StatusBadRequest, in.Code, in.Message)
	case errors.As(err, &reason):
		abort(c, http.StatusUnauthorized, string(reason), "api key refused")
	case errors.Is(err, keys.ErrGuest):
		abort(c, http.StatusForbidden, "forbidden_role", "guests cannot manage api keys")
	case errors.Is(err, keys.ErrRolesNotHeld):
		abort(c, http.StatusForbidden, "roles_not_held", "a key can only carry roles you hold")
	case errors.Is(err, keys.ErrLimit):
		abort(c, http.StatusConflict, "key_limit_reached", "too many active api keys")
	case errors.Is(err, keys.ErrNameTaken):
		abort(c, http.StatusConflict, "name_taken", "an active api key already has this name")
	case errors.Is(err, keys.ErrNotFound):
		abort(c, http.StatusNotFound, "key_not_found", "no such api key")
	case errors.Is(err, keys.ErrNotActive):
		abort(c, http.StatusConflict, "key_not_active", "the api key is revoked, expired or already rotated")
	default:
		logger(c).Error().Err(err).Msg("request failed")
		c.Header("Retry-After", "5")
		abort(c, http.StatusServiceUnavailable, "unavailable", "service temporarily unavailable")
	}
}

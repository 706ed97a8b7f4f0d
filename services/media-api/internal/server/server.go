// Package server is media-api's HTTP layer (gin): the public router
// (/v1/media…, authenticated by pkg/edgehttp except the signed download
// URL, which is its own capability) and the internal router (/healthz,
// /readyz), which listen on separate ports. It bounds and decodes every
// input, maps package media's errors to JSON answers with stable codes, and
// logs each request with its request id — never a query string, token,
// signature or key.
package server

import (
	"context"
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
	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
)

// Body limits besides the media size limit.
const (
	// MultipartOverhead is allowed on top of MEDIA_MAX_BYTES for the
	// boundaries and part headers of a multipart upload.
	MultipartOverhead = 16 << 10
	// MaxFetchBody bounds POST /v1/media/fetch bodies.
	MaxFetchBody = 4 << 10
)

// Config configures the routers.
type Config struct {
	Media *media.Service
	// Auth authenticates every route but the signed download. Nil means
	// AUTH_ENABLED=false (dev only): those routes answer 503 auth_disabled.
	Auth *edgehttp.Middleware
	// TrustedProxies are the gateway addresses or prefixes whose
	// X-Forwarded-For gin believes (none by default; never everything).
	TrustedProxies []string
	// Ready reports whether the storage is usable (/readyz).
	Ready  func(ctx context.Context) error
	Logger zerolog.Logger
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
	if cfg.Media == nil {
		return nil, errors.New("server: media service required")
	}
	e, err := newEngine(cfg.Logger, cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	withMetrics(e, cfg.Metrics)
	h := &handlers{cfg: cfg}
	var auth gin.HandlerFunc
	if cfg.Auth != nil {
		auth = ginedge.Authenticate(cfg.Auth)
	} else {
		auth = func(c *gin.Context) {
			abort(c, http.StatusServiceUnavailable, "auth_disabled", "authentication is disabled (AUTH_ENABLED=false): the media API is unavailable")
		}
	}
	e.POST("/v1/media", auth, h.upload)
	e.POST("/v1/media/fetch", auth, h.fetch)
	e.GET("/v1/media/:id", auth, h.get)
	e.DELETE("/v1/media/:id", auth, h.delete)
	e.POST("/v1/media/:id/url", auth, h.signURL)
	// The signed URL is the capability: no identity needed.
	e.GET("/v1/media/:id/content", h.content)
	e.HEAD("/v1/media/:id/content", h.content)
	return e, nil
}

// Internal returns the internal router (never routed by Kong).
func Internal(cfg Config) (http.Handler, error) {
	e, err := newEngine(cfg.Logger, nil)
	if err != nil {
		return nil, err
	}
	withMetrics(e, cfg.Metrics)
	h := &handlers{cfg: cfg}
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", h.ready)
	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}
	return e, nil
}

func (h *handlers) ready(c *gin.Context) {
	if h.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := h.cfg.Ready(ctx); err != nil {
			logger(c).Warn().Err(err).Msg("not ready")
			abort(c, http.StatusServiceUnavailable, "not_ready", "storage unavailable")
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// requestLog gives every request a request id (X-Request-ID when valid,
// else a new one), echoes it, puts a logger carrying it in the request
// context, and logs one line per request: the route pattern, never the
// path's id, the query (a signed URL's sig), headers or body.
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
			Int("status", c.Writer.Status()).Int("bytes_out", c.Writer.Size()).
			Dur("duration", time.Since(start)).Str("client_ip", c.ClientIP()).Msg("request")
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

// fail maps an error of package media to its answer. Rejections are 4xx
// (or 5xx naming the remote side for fetches); anything else is a storage
// failure: logged, 503.
func fail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, media.ErrNotFound):
		abort(c, http.StatusNotFound, "not_found", "no such media")
	case errors.Is(err, media.ErrTooLarge):
		closeConn(c)
		abort(c, http.StatusRequestEntityTooLarge, "media_too_large", "media larger than the size limit")
	case errors.Is(err, media.ErrEmpty):
		abort(c, http.StatusBadRequest, "empty_body", "no media in the request")
	case errors.Is(err, media.ErrUnsupportedType):
		closeConn(c)
		abort(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "only jpeg, png, gif and webp images are accepted (judged by content, not by the declared type)")
	case errors.Is(err, media.ErrBody):
		logger(c).Debug().Err(err).Msg("request body unreadable")
		closeConn(c)
		abort(c, http.StatusBadRequest, "invalid_body", "the request body could not be read to its end")
	case errors.Is(err, media.ErrURLExpired):
		abort(c, http.StatusForbidden, "url_invalid", "the download url has expired")
	case errors.Is(err, media.ErrURLInvalid):
		abort(c, http.StatusForbidden, "url_invalid", "the download url is invalid")
	case errors.Is(err, media.ErrFetchDisabled):
		abort(c, http.StatusForbidden, "fetch_disabled", "remote fetch is disabled (MEDIA_FETCH_ENABLED=false)")
	case errors.Is(err, media.ErrInvalidURL):
		abort(c, http.StatusBadRequest, "invalid_url", "url must be an absolute http or https url without credentials")
	case errors.Is(err, media.ErrFetchRefused):
		abort(c, http.StatusUnprocessableEntity, "fetch_refused", "the url leads to an address, scheme or redirect chain that is not allowed")
	case errors.Is(err, media.ErrFetchTimeout):
		abort(c, http.StatusGatewayTimeout, "fetch_timeout", "the remote server did not answer in time")
	case errors.Is(err, media.ErrFetchFailed):
		abort(c, http.StatusBadGateway, "fetch_failed", "the remote server could not be fetched")
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		logger(c).Debug().Msg("request cancelled by the client")
		closeConn(c)
		abort(c, http.StatusBadRequest, "request_cancelled", "request cancelled")
	default:
		logger(c).Error().Err(err).Msg("request failed")
		c.Header("Retry-After", "5")
		abort(c, http.StatusServiceUnavailable, "unavailable", "service temporarily unavailable")
	}
}

// closeConn makes the server close the connection after the answer instead
// of reading the rest of a refused body.
func closeConn(c *gin.Context) { c.Header("Connection", "close") }

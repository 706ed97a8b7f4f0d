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
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
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

// Public returns the public router.
func Public(cfg Config) (http.Handler, error) {
	if cfg.Media == nil {
		return nil, errors.New("server: media service required")
	}
	e, err := ginedge.NewEngine(cfg.Logger, cfg.TrustedProxies, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	h := &handlers{cfg: cfg}
	var auth gin.HandlerFunc
	if cfg.Auth != nil {
		auth = ginedge.Authenticate(cfg.Auth)
	} else {
		auth = func(c *gin.Context) {
			ginedge.Abort(c, http.StatusServiceUnavailable, "auth_disabled", "authentication is disabled (AUTH_ENABLED=false): the media API is unavailable")
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
	e, err := ginedge.NewEngine(cfg.Logger, nil, cfg.Metrics)
	if err != nil {
		return nil, err
	}
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", ginedge.Ready(cfg.Ready, "storage"))
	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}
	return e, nil
}

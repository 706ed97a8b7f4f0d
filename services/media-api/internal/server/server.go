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
	"github.com/edgeguard/edgeguard/pkg/identity"
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
	// Authenticator is the credential chain of every route but the signed
	// download (X-Edge-Identity, then the Keycloak JWT when accepted); the
	// group's policy is declared where Public registers it. Nil means
	// AUTH_ENABLED=false (dev only): those routes answer 503 auth_disabled.
	Authenticator edgehttp.Authenticator
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
	// /v1/media: any authenticated identity (JWT or API key at the edge,
	// guests included) may store media; ownership does the rest.
	auth, err := ginedge.Guard(cfg.Authenticator, identity.Policy{}, cfg.Logger, "the media API")
	if err != nil {
		return nil, err
	}
	g := e.Group("/v1/media", auth)
	g.POST("", h.upload)
	g.POST("/fetch", h.fetch)
	g.GET("/:id", h.get)
	g.DELETE("/:id", h.delete)
	g.POST("/:id/url", h.signURL)
	// The signed URL is the capability: no identity needed (outside the
	// group, so its guard never runs).
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

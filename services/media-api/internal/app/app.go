// Package app wires media-api together from its configuration: the file
// system store, the media rules, the URL signer, the optional ssrf-guarded
// fetch client, authentication (the edge's X-Edge-Identity and, when
// configured, Keycloak JWTs), the public and internal listeners and the
// retention loop. main stays thin; tests build an App with overrides
// through Deps.
package app

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/ssrf"
	"github.com/edgeguard/edgeguard/services/media-api/internal/config"
	"github.com/edgeguard/edgeguard/services/media-api/internal/fsstore"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/edgeguard/edgeguard/services/media-api/internal/server"
	"github.com/edgeguard/edgeguard/services/media-api/internal/signedurl"
	"github.com/rs/zerolog"
)

// Deps overrides dependencies (tests). Zero fields are built from Config.
type Deps struct {
	Verifier edgehttp.Verifier // default: jwtauth from AUTH_* (when AUTH_ACCEPT_JWT)
	Now      func() time.Time
	// FetchResolver and FetchAllow reach test servers through the ssrf
	// client (FetchAllow is ssrf's InsecureAllowPrefixes: tests only).
	FetchResolver ssrf.Resolver
	FetchAllow    []netip.Prefix
}

// App is a wired media-api.
type App struct {
	cfg      *config.Config
	log      zerolog.Logger
	Store    *fsstore.FS
	Media    *media.Service
	Public   http.Handler
	Internal http.Handler

	verifier *jwtauth.Verifier
}

// New builds the App: opens (creates) the storage directory; no listener
// is opened.
func New(cfg *config.Config, log zerolog.Logger, deps Deps) (*App, error) {
	a := &App{cfg: cfg, log: log}
	if cfg.Secrets != nil {
		cfg.Secrets.Attach(log) // the access records of the configuration's reads, at debug
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	st, wide, err := fsstore.Open(cfg.StorageDir)
	if err != nil {
		return nil, fmt.Errorf("MEDIA_STORAGE_DIR: %w", err)
	}
	if wide {
		log.Warn().Str("dir", st.Dir()).Msg("MEDIA_STORAGE_DIR is accessible to group or others; chmod 700 it")
	}
	a.Store = st

	signer, err := signedurl.New(cfg.URLSigningKey, cfg.URLTTL, cfg.URLTTL, now)
	if err != nil {
		return nil, fmt.Errorf("MEDIA_URL_SIGNING_KEY_FILE: %w", err)
	}
	var fetcher *http.Client
	if cfg.FetchEnabled {
		redirects := cfg.FetchMaxRedirects
		if redirects == 0 {
			redirects = -1 // ssrf: negative follows none
		}
		fetcher = ssrf.Client(ssrf.Options{Timeout: cfg.FetchTimeout, MaxRedirects: redirects,
			MaxBodyBytes: cfg.MaxBytes, Resolver: deps.FetchResolver, InsecureAllowPrefixes: deps.FetchAllow})
	}
	a.Media, err = media.New(media.Config{Store: st, MaxBytes: cfg.MaxBytes, Retention: cfg.Retention,
		Signer: signer, PublicBaseURL: cfg.PublicBaseURL, Fetcher: fetcher, Now: now, Logger: log})
	if err != nil {
		return nil, err
	}

	// the route group's policy is declared next to the group (package server)
	var authn edgehttp.Authenticator
	if cfg.Auth.Enabled {
		chain, built, err := cfg.Auth.Authenticator(deps.Verifier, now, log)
		if err != nil {
			return nil, err
		}
		a.verifier = built
		authn = chain
	} else {
		log.Warn().Msg("AUTH_ENABLED=false (STRICT=false): the media API answers 503 auth_disabled; only signed downloads work")
	}

	scfg := server.Config{Metrics: httpmetrics.New("media-api"), Media: a.Media, Authenticator: authn, TrustedProxies: cfg.TrustedProxies, Ready: a.ready, Logger: log}
	if a.Public, err = server.Public(scfg); err != nil {
		return nil, err
	}
	if a.Internal, err = server.Internal(scfg); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// ready: the storage directory is still a writable directory.
func (a *App) ready(context.Context) error {
	f, err := os.CreateTemp(a.Store.Dir(), ".tmp-ready-")
	if err != nil {
		return fmt.Errorf("storage not writable: %w", err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// Background runs the retention loop until ctx ends.
func (a *App) Background(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() { a.Media.RunRetention(ctx, a.cfg.CleanupInterval) })
	return &wg
}

// Run serves the public and internal listeners and the retention loop
// until ctx ends, then shuts down gracefully (10 s).
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The public listener serves mTLS (the edge's client certificate
	// required, files re-read on rotation) unless INSECURE_PLAIN_HTTP.
	pubTLS, err := a.cfg.TLS.TLSConfig(a.log)
	if err != nil {
		return err
	}
	srv := edgehttp.Servers{Public: a.httpServer(a.cfg.ListenAddr, a.Public), Internal: a.httpServer(a.cfg.InternalListenAddr, a.Internal), PublicTLS: pubTLS}
	if pubTLS != nil {
		srv.Public.ErrorLog = mtls.ErrorLog(a.log.With().Str("listener", "public").Logger())
	}
	pub, in, err := srv.Listen()
	if err != nil {
		return err
	}
	a.log.Info().Str("public", pub.Addr().String()).Str("public_transport", a.cfg.TLS.Describe()).Str("internal", in.Addr().String()).
		Str("storage", a.Store.Dir()).Int64("max_bytes", a.cfg.MaxBytes).Bool("fetch", a.cfg.FetchEnabled).
		Msg("media-api listening")
	bg := a.Background(ctx)
	err = srv.Serve(ctx, pub, in)
	cancel()
	bg.Wait()
	return err
}

// httpServer: uploads and downloads of up to MEDIA_MAX_BYTES need more time
// than JSON APIs; headers stay tightly bounded.
func (a *App) httpServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 2 * time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 32 << 10,
	}
}

// Close releases the JWT verifier.
func (a *App) Close() {
	if a.verifier != nil {
		a.verifier.Close()
	}
}

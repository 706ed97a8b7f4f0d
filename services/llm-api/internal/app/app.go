// Package app wires llm-api together from its configuration: PostgreSQL
// (migrated at start-up), Redis for revocation announcements, Keycloak for
// owners' current roles, the JWT verifier, the key service, and the public
// and internal HTTP listeners. main stays thin; tests build an App with
// fakes injected through Deps.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keycloak"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Deps overrides dependencies (tests). Zero fields are built from Config.
type Deps struct {
	Roles    keys.RoleSource   // default: Keycloak (cached)
	Verifier edgehttp.Verifier // default: jwtauth from AUTH_*
	Now      func() time.Time
	// UsageInterval and SweepInterval override the background periods.
	UsageInterval time.Duration
	SweepInterval time.Duration
}

// App is a wired llm-api.
type App struct {
	cfg      *config.Config
	log      zerolog.Logger
	Store    *store.PG
	Keys     *keys.Service
	Usage    *keys.Usage
	Sweeper  *keys.Sweeper
	Public   http.Handler
	Internal http.Handler

	rdb      redis.UniversalClient
	verifier *jwtauth.Verifier
}

// RedisPublisher announces revocations with apikey.PublishRevocation
// (docs/contracts.md): it also deletes the shared cache layer's entries.
type RedisPublisher struct{ RDB redis.UniversalClient }

// PublishRevocation implements keys.Publisher.
func (p RedisPublisher) PublishRevocation(ctx context.Context, kid string, _ time.Time) error {
	return apikey.PublishRevocation(ctx, p.RDB, kid)
}

// New builds the App: connects to PostgreSQL (retrying for up to a minute,
// for compose start-up order) and applies the migrations. No listener is
// opened.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger, deps Deps) (*App, error) {
	a := &App{cfg: cfg, log: log}
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

	if err := a.openStore(ctx); err != nil {
		return nil, err
	}

	var previous []apikey.Pepper
	if cfg.PepperPrevious != nil {
		previous = append(previous, apikey.Pepper{ID: config.PepperID(cfg.PepperPrevious), Secret: cfg.PepperPrevious})
	}
	peppers, err := apikey.NewPeppers(apikey.Pepper{ID: config.PepperID(cfg.Pepper), Secret: cfg.Pepper}, previous...)
	if err != nil {
		return nil, fmt.Errorf("API_KEY_PEPPER_FILE: %w", err)
	}

	if cfg.RedisAddr != "" {
		a.rdb, err = redisconn.New(redisconn.Config{Addrs: strings.Split(cfg.RedisAddr, ","), Password: string(cfg.RedisPassword)})
		if err != nil {
			return nil, fmt.Errorf("REDIS_ADDR: %w", err)
		}
		a.Sweeper = keys.NewSweeper(a.Store, RedisPublisher{RDB: a.rdb}, deps.SweepInterval, now, log.With().Str("component", "revocations").Logger())
	} else {
		log.Warn().Msg("REDIS_ADDR unset (STRICT=false): revocations are not announced; edges drop revoked keys only when their cache entries expire")
	}

	roles := deps.Roles
	if roles == nil {
		src, err := keycloak.New(keycloak.Config{URL: cfg.KeycloakURL, Realm: cfg.KeycloakRealm,
			ClientID: cfg.KeycloakClientID, ClientSecret: string(cfg.KeycloakClientSecret)})
		if err != nil {
			return nil, fmt.Errorf("KEYCLOAK_URL: %w", err)
		}
		roles = src
	}
	roles = keys.NewCachedRoles(roles, cfg.KeycloakCacheTTL, 0, now)

	a.Usage = keys.NewUsage(a.Store, deps.UsageInterval, log.With().Str("component", "last-used").Logger())
	a.Keys, err = keys.New(keys.Config{
		Store: a.Store, Roles: roles, Peppers: peppers, Revoked: a.Sweeper, Usage: a.Usage,
		MaxPerUser: cfg.MaxKeysPerUser, DefaultExpiresDays: cfg.DefaultExpiresDays, MaxExpiresDays: cfg.MaxExpiresDays,
		Env: cfg.KeyEnv, IncludeEmail: cfg.ValidateEmail, Now: now, Logger: log,
	})
	if err != nil {
		return nil, err
	}

	var mw *edgehttp.Middleware
	if cfg.AuthEnabled {
		v := deps.Verifier
		if v == nil {
			a.verifier, err = jwtauth.New(jwtauth.Config{
				Issuers:    []jwtauth.Issuer{{Issuer: cfg.AuthIssuer, JWKSURL: cfg.AuthJWKSURL}},
				Audiences:  cfg.AuthAudience,
				AllowedAZP: cfg.AuthAllowedAZP,
				Logger:     log.With().Str("component", "jwtauth").Logger(),
			})
			if err != nil {
				return nil, fmt.Errorf("AUTH_ISSUER/AUTH_AUDIENCE/AUTH_JWKS_URL: %w", err)
			}
			v = a.verifier
		}
		mw, err = edgehttp.New(edgehttp.Config{
			Authenticator: &edgehttp.JWT{Verifier: v},
			Policy:        identity.Policy{AuthMethods: []string{identity.MethodJWT}, ForbiddenRoles: []string{identity.RoleGuest}},
			Logger:        log,
		})
		if err != nil {
			return nil, err
		}
	} else {
		log.Warn().Msg("AUTH_ENABLED=false (STRICT=false): API-key management answers 503 auth_disabled")
	}

	scfg := server.Config{Keys: a.Keys, Auth: mw, InternalToken: cfg.InternalToken, IncludeEmail: cfg.ValidateEmail,
		TrustedProxies: cfg.TrustedProxies, Ready: a.Store.Ping, Logger: log}
	if a.Public, err = server.Public(scfg); err != nil {
		return nil, err
	}
	if a.Internal, err = server.Internal(scfg); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

func (a *App) openStore(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := a.tryStore(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		a.log.Warn().Err(err).Msg("database not ready; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (a *App) tryStore(ctx context.Context) error {
	if a.Store == nil {
		s, err := store.Open(ctx, string(a.cfg.DatabaseURL))
		if err != nil {
			return err
		}
		a.Store = s
	}
	applied, err := a.Store.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, m := range applied {
		a.log.Info().Str("migration", m).Msg("migration applied")
	}
	return nil
}

// Background runs the last-used batcher and the revocation sweeper until
// ctx ends.
func (a *App) Background(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() { a.Usage.Run(ctx) })
	if a.Sweeper != nil {
		wg.Go(func() { a.Sweeper.Run(ctx) })
	}
	return &wg
}

// Run serves the public and internal listeners and the background work
// until ctx ends, then shuts down gracefully (10 s).
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	servers := []*http.Server{a.httpServer(a.cfg.ListenAddr, a.Public), a.httpServer(a.cfg.InternalListenAddr, a.Internal)}
	listeners := make([]net.Listener, len(servers))
	for i, s := range servers {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			for _, l := range listeners[:i] {
				_ = l.Close()
			}
			name := "LISTEN_ADDR"
			if i == 1 {
				name = "INTERNAL_LISTEN_ADDR"
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		listeners[i] = ln
	}
	a.log.Info().Str("public", listeners[0].Addr().String()).Str("internal", listeners[1].Addr().String()).Msg("llm-api listening")
	bg := a.Background(ctx)
	errs := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if err := s.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	bg.Wait()
	return runErr
}

func (a *App) httpServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 32 << 10,
		ErrorLog:       nil,
	}
}

// Close releases the database pool, the Redis client and the verifier.
func (a *App) Close() {
	if a.Store != nil {
		a.Store.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.verifier != nil {
		a.verifier.Close()
	}
}

// Package app wires llm-api together from its configuration: PostgreSQL
// (migrated at start-up), Redis for revocation announcements and the guest
// limits, Keycloak for owners' current roles and guest sessions, the
// authenticators (X-Edge-Identity, and the JWT verifier when accepted), the
// key service, the guest service and its cleanup, and the public and
// internal HTTP listeners. main stays thin; tests build an App with
// fakes injected through Deps.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keycloak"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmproxy"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/metering"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Deps overrides dependencies (tests). Zero fields are built from Config.
type Deps struct {
	Roles    keys.RoleSource   // default: Keycloak (cached)
	Verifier edgehttp.Verifier // default: jwtauth from AUTH_*
	// GuestDirectory, GuestIssuer and GuestLimiter default to Keycloak's
	// admin API (llm-api service account), Keycloak's token endpoint
	// (guest-login client) and pkg/ratelimit on Redis.
	GuestDirectory guests.Directory
	GuestIssuer    guests.Issuer
	GuestLimiter   guests.Limiter
	Now            func() time.Time
	// AuditConsumer names this instance in the audit stream's consumer
	// group (default: the host name).
	AuditConsumer string
	// UsageInterval and SweepInterval override the background periods.
	UsageInterval time.Duration
	SweepInterval time.Duration
	// BudgetSyncInterval overrides how often overrides and key budgets
	// are rewritten from PostgreSQL to Redis (default 5 min).
	BudgetSyncInterval time.Duration
}

// App is a wired llm-api.
type App struct {
	cfg     *config.Config
	log     zerolog.Logger
	Store   *store.PG
	Keys    *keys.Service
	Usage   *keys.Usage
	Sweeper *keys.Sweeper
	// Guests and Cleaner are nil when guest login is off
	// (GUEST_LOGIN_ENABLED=false, or no guest-login secret with STRICT=false).
	Guests   *guests.Service
	Cleaner  *guests.Cleaner
	Public   http.Handler
	Internal http.Handler
	// Audit emits llm-api's events to the stream and Ingester stores the
	// stream in PostgreSQL; both nil without Redis (STRICT=false only).
	Audit    *audit.Emitter
	Ingester *auditlog.Ingester

	rdb          redis.UniversalClient
	auditMetrics *audit.Metrics
	verifier     *jwtauth.Verifier
	limiter      *ratelimit.Limiter
	llm          *llmproxy.Proxy
	// Metering and Ledger: the token budgets in front of the model server
	// (nil without LLM_BUDGETS_FILE, STRICT=false only).
	Metering *metering.Handler
	Ledger   *ledger.Writer
	budgets  *budget.Store
	// Entitlements are the budget overrides and API keys' own budgets
	// (nil without LLM_BUDGETS_FILE or Redis).
	Entitlements *entitlement.Service
	syncEvery    time.Duration
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
	a := &App{cfg: cfg, log: log, syncEvery: deps.BudgetSyncInterval}
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
	log.Info().Object("peppers", peppers).Msg("api key peppers (ids only; a rotation's progress: api_keys.pepper_id)")

	if cfg.RedisAddr != "" {
		a.rdb, err = redisconn.New(redisconn.Config{Addrs: strings.Split(cfg.RedisAddr, ","), Cluster: cfg.RedisCluster,
			Password: string(cfg.RedisPassword)})
		if err != nil {
			return nil, fmt.Errorf("REDIS_ADDR: %w", err)
		}
		a.Sweeper = keys.NewSweeper(a.Store, RedisPublisher{RDB: a.rdb}, deps.SweepInterval, now, log.With().Str("component", "revocations").Logger())
		if err := a.audit(cfg, deps, now, log); err != nil {
			return nil, err
		}
	} else {
		log.Warn().Msg("REDIS_ADDR unset (STRICT=false): revocations are not announced; edges drop revoked keys only when their cache entries expire")
	}

	var src *keycloak.Source
	if deps.Roles == nil || (cfg.GuestLoginEnabled && deps.GuestDirectory == nil) {
		src, err = keycloak.New(keycloak.Config{URL: cfg.KeycloakURL, Realm: cfg.KeycloakRealm,
			ClientID: cfg.KeycloakClientID, ClientSecret: string(cfg.KeycloakClientSecret)})
		if err != nil {
			return nil, fmt.Errorf("KEYCLOAK_URL: %w", err)
		}
	}
	roles := deps.Roles
	if roles == nil {
		roles = src
	}
	roles = keys.NewCachedRoles(roles, cfg.KeycloakCacheTTL, 0, now)

	// budgets (LLM_BUDGETS_FILE) live in Redis: the reservations, and the
	// copies of the overrides and key budgets PostgreSQL holds
	var keyBudgets keys.Budgets
	if cfg.Budgets != nil && a.rdb != nil {
		a.budgets = budget.NewStore(a.rdb, cfg.Budgets.ReservationTimeout)
		a.Entitlements, err = entitlement.New(entitlement.Config{Budgets: *cfg.Budgets, Store: a.Store, Redis: a.budgets,
			Now: now, Logger: log})
		if err != nil {
			return nil, err
		}
		keyBudgets = a.Entitlements
	}
	a.Usage = keys.NewUsage(a.Store, deps.UsageInterval, log.With().Str("component", "last-used").Logger())
	a.Keys, err = keys.New(keys.Config{
		Store: a.Store, Roles: roles, Peppers: peppers, Revoked: a.Sweeper, Usage: a.Usage, Budgets: keyBudgets,
		MaxPerUser: cfg.MaxKeysPerUser, DefaultExpiresDays: cfg.DefaultExpiresDays, MaxExpiresDays: cfg.MaxExpiresDays,
		Env: cfg.KeyEnv, IncludeEmail: cfg.ValidateEmail, Now: now, Logger: log,
	})
	if err != nil {
		return nil, err
	}

	if err := a.guests(cfg, deps, src, now, log); err != nil {
		return nil, err
	}

	// the routes' policies are declared next to their groups (package server)
	var authn edgehttp.Authenticator
	if cfg.Auth.Enabled {
		chain, built, err := cfg.Auth.Authenticator(deps.Verifier, now, log)
		if err != nil {
			return nil, err
		}
		a.verifier = built
		authn = chain
	} else {
		log.Warn().Msg("AUTH_ENABLED=false (STRICT=false): API-key management and the model API answer 503 auth_disabled")
	}

	var llm http.Handler
	if cfg.LLMUpstreamURL != "" {
		a.llm, err = llmproxy.New(llmproxy.Config{UpstreamURL: cfg.LLMUpstreamURL, APIKey: cfg.LLMUpstreamAPIKey,
			Timeout: cfg.LLMUpstreamTimeout, HeaderTimeout: cfg.LLMUpstreamHeaderTimeout, MaxBodyBytes: cfg.LLMMaxBodyBytes,
			Logger: log.With().Str("component", "llmproxy").Logger()})
		if err != nil {
			return nil, fmt.Errorf("LLM_UPSTREAM_URL: %w", err)
		}
		llm = a.llm
		log.Info().Bool("upstream_key", len(cfg.LLMUpstreamAPIKey) > 0).Dur("timeout", cfg.LLMUpstreamTimeout).Msg("model API enabled")
	} else {
		log.Warn().Msg("LLM_UPSTREAM_URL unset: the model API (/v1/...) answers 503 llm_not_configured")
	}

	metrics := httpmetrics.New("llm-api")
	if a.llm != nil {
		if llm, err = a.meter(cfg, llm, metrics, log); err != nil {
			return nil, err
		}
	}
	if a.Audit != nil {
		metrics.Registry().MustRegister(append(a.auditMetrics.Collectors(), a.Ingester.Metrics.Collectors()...)...)
	}
	var auditStore auditlog.Store
	if a.Ingester != nil {
		auditStore = a.Store
	}
	scfg := server.Config{Budgets: a.Entitlements, Usage: a.Store, Metrics: metrics, Audit: a.Audit, AuditStore: auditStore, Keys: a.Keys, Authenticator: authn, LLM: llm, Guests: a.Guests, InternalToken: cfg.InternalToken, InternalTokenPrevious: cfg.InternalTokenPrevious, IncludeEmail: cfg.ValidateEmail,
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

// meter puts the budgets (LLM_BUDGETS_FILE) in front of the model API:
// the reservations in Redis, the ledger in PostgreSQL, the metrics.
func (a *App) meter(cfg *config.Config, upstream http.Handler, metrics *httpmetrics.Metrics, log zerolog.Logger) (http.Handler, error) {
	if cfg.Budgets == nil {
		log.Warn().Msg("LLM_BUDGETS_FILE unset (STRICT=false): the model API is unmetered (no token or cost budgets)")
		return upstream, nil
	}
	if a.rdb == nil {
		return nil, errors.New("LLM_BUDGETS_FILE: budgets are kept in Redis: set REDIS_ADDR")
	}
	mlog := log.With().Str("component", "budgets").Logger()
	a.Ledger = ledger.NewWriter(a.Store, mlog)
	m := metering.NewMetrics()
	if err := m.Register(metrics.Registry()); err != nil {
		return nil, err
	}
	metrics.Registry().MustRegister(a.Ledger.Collectors()...)
	var err error
	a.Metering, err = metering.New(metering.Config{
		Budgets: *cfg.Budgets, Store: a.budgets, Upstream: upstream, MaxBodyBytes: cfg.LLMMaxBodyBytes,
		OnRedisError: cfg.LLMBudgetOnRedisError, Ledger: a.Ledger, Metrics: m, Logger: mlog,
		Exhausted: newExhaustedAudit(a.Audit).emit,
	})
	if err != nil {
		return nil, err
	}
	log.Info().Int("roles", len(cfg.Budgets.Roles)).Int("prices", len(cfg.Budgets.Prices)).
		Str("on_redis_error", cfg.LLMBudgetOnRedisError).Msg("token budgets enabled")
	return a.Metering, nil
}

// audit builds the emitter (llm-api's own events) and the ingester (the
// stream, every component's events, into PostgreSQL) on REDIS_ADDR.
func (a *App) audit(cfg *config.Config, deps Deps, now func() time.Time, log zerolog.Logger) error {
	alog := log.With().Str("component", "audit").Logger()
	if cfg.Audit.Stream == "" {
		cfg.Audit.Stream = audit.DefaultStream
	}
	if cfg.Audit.MaxLen == 0 {
		cfg.Audit.MaxLen = audit.DefaultMaxLen
	}
	a.auditMetrics = audit.NewMetrics(nil)
	var err error
	a.Audit, err = audit.New(audit.Config{
		Writer: audit.RedisWriter{Client: a.rdb, Stream: cfg.Audit.Stream, MaxLen: cfg.Audit.MaxLen},
		Logger: alog, Metrics: a.auditMetrics, Now: now,
	})
	if err != nil {
		return err
	}
	name := deps.AuditConsumer
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			name = "llm-api"
		}
	}
	a.Ingester = &auditlog.Ingester{
		Reader:    &audit.Consumer{Client: a.rdb, Stream: cfg.Audit.Stream, Group: "llm-api", Name: name},
		Store:     a.Store,
		Logger:    alog,
		Retention: time.Duration(cfg.AuditRetentionDays) * 24 * time.Hour,
		Now:       now,
		Metrics:   auditlog.NewIngestMetrics(),
	}
	return nil
}

// guests builds guest login (Keycloak, the guest-login client, limits on
// Redis) and the cleanup of expired guests, when GUEST_LOGIN_ENABLED.
func (a *App) guests(cfg *config.Config, deps Deps, src *keycloak.Source, now func() time.Time, log zerolog.Logger) error {
	if !cfg.GuestLoginEnabled {
		log.Info().Msg("GUEST_LOGIN_ENABLED=false: guest routes answer 503 guest_login_disabled; no guest cleanup")
		return nil
	}
	glog := log.With().Str("component", "guests").Logger()
	dir := deps.GuestDirectory
	if dir == nil {
		dir = src
	}
	issuer := deps.GuestIssuer
	if issuer == nil {
		if cfg.GuestLoginClientSecret == nil {
			log.Warn().Msg("GUEST_LOGIN_CLIENT_SECRET_FILE unset (STRICT=false): guest routes answer 503 guest_login_disabled; no guest cleanup")
			return nil
		}
		gt, err := keycloak.NewGuestTokens(keycloak.Config{URL: cfg.KeycloakURL, Realm: cfg.KeycloakRealm,
			ClientID: cfg.GuestLoginClientID, ClientSecret: string(cfg.GuestLoginClientSecret)})
		if err != nil {
			return fmt.Errorf("GUEST_LOGIN_CLIENT_ID: %w", err)
		}
		issuer = gt
	}
	lim := deps.GuestLimiter
	if lim == nil {
		var err error
		if a.rdb != nil {
			a.limiter, err = ratelimit.New(ratelimit.Config{Client: a.rdb, OnRedisError: ratelimit.OnErrorLocal, Logger: &glog})
			lim = a.limiter
		} else {
			log.Warn().Msg("REDIS_ADDR unset (STRICT=false): guest limits are per process")
			lim, err = ratelimit.NewLocal(ratelimit.LocalConfig{Now: now})
		}
		if err != nil {
			return fmt.Errorf("guest limits: %w", err)
		}
	}
	a.Cleaner = &guests.Cleaner{Directory: dir, Audit: a.Audit, TTL: cfg.GuestTTL, Interval: cfg.GuestCleanupInterval, Now: now,
		Logger: log.With().Str("component", "guest-cleanup").Logger()}
	var err error
	a.Guests, err = guests.New(guests.Config{Directory: dir, Issuer: issuer, Limiter: lim,
		PerIP: cfg.GuestLimitPerIP, MaxPerHour: cfg.GuestMaxPerHour, SessionPerIP: cfg.GuestSessionLimitPerIP, Logger: log})
	return err
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

// Background runs the last-used batcher, the revocation sweeper and the
// guest cleanup until ctx ends.
func (a *App) Background(ctx context.Context) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() { a.Usage.Run(ctx) })
	if a.Sweeper != nil {
		wg.Go(func() { a.Sweeper.Run(ctx) })
	}
	if a.Cleaner != nil {
		wg.Go(func() { a.Cleaner.Run(ctx) })
	}
	if a.Ingester != nil {
		wg.Go(func() { a.Ingester.Run(ctx) })
	}
	if a.Metering != nil {
		wg.Go(func() { a.sweepBudgets(ctx) })
	}
	if a.Entitlements != nil {
		// at start and every 5 min: a flushed Redis gets the overrides
		// and key budgets back
		wg.Go(func() { a.Entitlements.Run(ctx, a.syncEvery) })
	}
	// the internal token and its previous value follow their files/Vault
	wg.Go(func() {
		secrets.Watch(ctx, a.cfg.SecretsRefresh, a.log.With().Str("component", "secrets").Logger(),
			a.cfg.InternalToken, a.cfg.InternalTokenPrevious)
	})
	return &wg
}

// Run serves the public and internal listeners and the background work
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
	a.log.Info().Str("public", pub.Addr().String()).Str("public_transport", a.cfg.TLS.Describe()).Str("internal", in.Addr().String()).Msg("llm-api listening")
	bg := a.Background(ctx)
	err = srv.Serve(ctx, pub, in)
	cancel()
	bg.Wait()
	return err
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

// sweepBudgets charges in full, every 30 s, the reservations no replica
// settled (a replica killed mid-request); each is recorded once.
func (a *App) sweepBudgets(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.Metering.Sweep(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn().Err(err).Str("component", "budgets").Msg("budget sweep failed; next in 30 s")
			}
		}
	}
}

// Close releases the database pool, the Redis client, the limiter and the
// verifier.
func (a *App) Close() {
	if a.Metering != nil {
		a.Metering.Close() // settlements still running, while Redis is open
	}
	if a.Ledger != nil {
		a.Ledger.Close() // stores queued usage while PostgreSQL is still open
	}
	a.Audit.Close() // flushes queued events while Redis is still open
	if a.llm != nil {
		a.llm.Close()
	}
	if a.limiter != nil {
		_ = a.limiter.Close()
	}
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

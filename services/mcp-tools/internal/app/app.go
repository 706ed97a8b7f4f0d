// Package app wires mcp-tools together from its configuration: the
// authenticators (the edge's X-Edge-Identity and, when configured, Keycloak
// JWTs), the approval store, the guarded fetch client, the sandbox client,
// the MCP server, and the public and internal HTTP listeners. main stays
// thin; tests build an App with fakes injected through Deps.
package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/ssrf"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/config"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/fetch"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/sandbox"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/server"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/tools"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Deps overrides dependencies (tests). Zero fields are built from Config.
type Deps struct {
	// Verifier replaces the jwtauth verifier built from AUTH_* (with
	// AUTH_ACCEPT_JWT=true).
	Verifier edgehttp.Verifier
	// FetchOptions are the test seams of fetch_url's pkg/ssrf client (a
	// Resolver; InsecureAllowPrefixes to reach an httptest server). Its
	// timeout and body cap come from Config.
	FetchOptions ssrf.Options
	// SandboxClient replaces the sandbox's HTTP client.
	SandboxClient *http.Client
	Now           func() time.Time
}

// App is a wired mcp-tools.
type App struct {
	cfg       *config.Config
	log       zerolog.Logger
	Tools     *tools.Server
	Approvals *approval.Store
	Public    http.Handler
	Internal  http.Handler
	// Audit emits approval decisions to the audit stream (nil: off).
	Audit *audit.Emitter

	verifier *jwtauth.Verifier
	rdb      redis.UniversalClient
}

// New builds the App. No listener is opened and nothing is dialed.
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

	authn, built, err := cfg.Auth.Authenticator(deps.Verifier, now, log)
	if err != nil {
		return nil, err
	}
	a.verifier = built

	tcfg := tools.Config{
		RequireApproval: cfg.RequireApproval, MaxCodeBytes: cfg.SandboxMaxCodeBytes,
		Timeout: cfg.ToolTimeout, Now: now, Logger: log,
	}
	if tcfg.Fetcher, err = fetch.New(fetch.Config{Client: guardedClient(cfg, deps.FetchOptions), Blocked: blocked,
		MaxBytes: cfg.FetchMaxBytes, Timeout: cfg.FetchTimeout}); err != nil {
		return nil, err
	}
	if cfg.SandboxURL != "" {
		sb, err := sandbox.New(sandbox.Config{URL: cfg.SandboxURL, Token: cfg.SandboxToken,
			Timeout: cfg.SandboxTimeout, HTTPClient: deps.SandboxClient})
		if err != nil {
			return nil, fmt.Errorf("SANDBOX_URL: %w", err)
		}
		tcfg.Runner = sb
		if cfg.RequireApproval {
			a.Approvals = approval.New(approval.Config{TTL: cfg.ApprovalTTL, MaxPending: cfg.ApprovalMaxPending,
				MaxPendingPerUser: cfg.ApprovalMaxPendingUser, Now: now})
			tcfg.Approvals = a.Approvals
		} else {
			log.Warn().Msg("SANDBOX_FUSION_REQUIRE_APPROVAL=false: run_python runs without a human approval")
		}
	} else {
		log.Info().Msg("SANDBOX_URL unset: run_python is not offered")
	}
	if a.Tools, err = tools.New(tcfg); err != nil {
		return nil, err
	}

	metrics := httpmetrics.New("mcp-tools")
	if cfg.AuditRedisAddr != "" {
		if a.rdb, err = redisconn.New(redisconn.Config{Addrs: strings.Split(cfg.AuditRedisAddr, ","), Cluster: cfg.AuditRedisCluster,
			Password: string(cfg.AuditRedisPassword)}); err != nil {
			return nil, fmt.Errorf("AUDIT_REDIS_ADDR: %w", err)
		}
		am := audit.NewMetrics(nil)
		metrics.Registry().MustRegister(am.Collectors()...)
		if a.Audit, err = audit.New(audit.Config{Writer: audit.RedisWriter{Client: a.rdb, Stream: cfg.Audit.Stream, MaxLen: cfg.Audit.MaxLen},
			Metrics: am, Logger: log, Now: now}); err != nil {
			return nil, err
		}
	} else {
		log.Info().Msg("AUDIT_REDIS_ADDR unset: approval decisions are not sent to the audit stream")
	}
	scfg := server.Config{Metrics: metrics, Audit: a.Audit, MCP: a.Tools.MCP, Authenticator: authn, Approvals: a.Approvals,
		MaxBodyBytes: cfg.MaxBodyBytes, TrustedProxies: cfg.TrustedProxies, Logger: log}
	if a.Public, err = server.Public(scfg); err != nil {
		return nil, err
	}
	if a.Internal, err = server.Internal(scfg); err != nil {
		return nil, err
	}
	log.Info().Strs("tools", a.Tools.Tools()).Bool("approvals", a.Approvals != nil).Msg("mcp-tools configured")
	ok = true
	return a, nil
}

// Run serves the public and internal listeners until ctx ends, then shuts
// down gracefully (10 s).
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A write may last as long as a tool call (plus slack for encoding).
	write := a.cfg.ToolTimeout + 15*time.Second
	// The public listener serves mTLS (the edge's client certificate
	// required, files re-read on rotation) unless INSECURE_PLAIN_HTTP.
	pubTLS, err := a.cfg.TLS.TLSConfig(a.log)
	if err != nil {
		return err
	}
	srv := edgehttp.Servers{Public: a.httpServer(a.cfg.ListenAddr, a.Public, write), Internal: a.httpServer(a.cfg.InternalListenAddr, a.Internal, 10*time.Second), PublicTLS: pubTLS}
	if pubTLS != nil {
		srv.Public.ErrorLog = mtls.ErrorLog(a.log.With().Str("listener", "public").Logger())
	}
	pub, in, err := srv.Listen()
	if err != nil {
		return err
	}
	a.log.Info().Str("public", pub.Addr().String()).Str("public_transport", a.cfg.TLS.Describe()).Str("internal", in.Addr().String()).Msg("mcp-tools listening")
	return srv.Serve(ctx, pub, in)
}

func (a *App) httpServer(addr string, h http.Handler, write time.Duration) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: write, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 32 << 10,
	}
}

// Close flushes the audit queue and releases the Redis client and the JWT
// verifier.
func (a *App) Close() {
	a.Audit.Close()
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.verifier != nil {
		a.verifier.Close()
	}
}

// Package config reads mcp-tools' configuration from the environment.
// Secrets come from files (*_FILE); an inline value (SANDBOX_TOKEN) is
// accepted only with STRICT=false. In strict mode (the default) a short or
// placeholder secret, or an inline one, refuses the start. Every fault is
// reported at once, each naming its variable. Identity is always required: at least one of
// EDGE_IDENTITY_JWKS_FILE (the edge's assertion) or AUTH_ACCEPT_JWT=true (a
// Keycloak JWT the service verifies itself) must be configured, in every
// mode. Every variable is documented in the service README and
// config/README.md.
//
// It reads files named by the environment; it does not connect to anything.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/secrets/vault"
	"github.com/edgeguard/edgeguard/pkg/svcauth"
)

// Secret is a secret value that never prints (pkg/envconf).
type Secret = envconf.Secret

// Config is mcp-tools' configuration. Defaults are documented on Load.
type Config struct {
	// Strict, the listeners, TRUSTED_PROXIES and LOG_LEVEL.
	envconf.Service

	// Authentication: AUTH_*, SERVICE_NAME, EDGE_IDENTITY_JWKS_FILE.
	Auth svcauth.Config

	// The public listener's mTLS (pkg/mtls): TLS_CERT_FILE, TLS_KEY_FILE,
	// TLS_CLIENT_CA_FILE, TLS_CLIENT_IDENTITY; plain HTTP only with
	// INSECURE_PLAIN_HTTP=true, refused in strict mode.
	TLS mtls.Settings

	MaxBodyBytes int64
	ToolTimeout  time.Duration

	FetchMaxBytes int
	FetchTimeout  time.Duration

	SandboxURL             string // "" disables run_python
	SandboxToken           Secret
	SandboxTimeout         time.Duration
	SandboxMaxCodeBytes    int
	RequireApproval        bool
	ApprovalTTL            time.Duration
	ApprovalMaxPending     int
	ApprovalMaxPendingUser int

	// Audit: approval.granted|denied events go to this Redis stream
	// (AUDIT_REDIS_ADDR; "" turns audit off).
	// AuditRedisCluster makes one AUDIT_REDIS_ADDR a Redis Cluster seed
	// (AUDIT_REDIS_CLUSTER; a comma-separated list is a Cluster either way).
	AuditRedisAddr     string
	AuditRedisCluster  bool
	AuditRedisPassword Secret
	Audit              audit.StreamConfig
}

// MinSandboxToken is the shortest SANDBOX_TOKEN accepted in strict mode.
const MinSandboxToken = 16

// Load reads the configuration through getenv (os.Getenv in production) and
// readFile (os.ReadFile).
//
// Defaults: STRICT=true, LISTEN_ADDR=:8080, INTERNAL_LISTEN_ADDR=:8081,
// LOG_LEVEL=info, SERVICE_NAME=mcp-tools, AUTH_ACCEPT_JWT=false,
// AUTH_AUDIENCE=jan-api, AUTH_ALLOWED_AZP=jan-cli,jan-agent,jan-web,guest-login,
// MCP_MAX_BODY_BYTES=262144, TOOL_TIMEOUT_SECONDS=60,
// FETCH_URL_MAX_BYTES=65536, FETCH_URL_TIMEOUT_SECONDS=10,
// SANDBOX_TIMEOUT_SECONDS=30, SANDBOX_MAX_CODE_BYTES=65536,
// SANDBOX_FUSION_REQUIRE_APPROVAL=true, APPROVAL_TTL=10m,
// APPROVAL_MAX_PENDING=1000, APPROVAL_MAX_PENDING_PER_USER=10,
// AUDIT_REDIS_ADDR unset (audit off), AUDIT_REDIS_CLUSTER=false,
// AUDIT_REDIS_STREAM=edgeguard:audit,
// AUDIT_STREAM_MAXLEN=100000. Every fault is reported at once
// (errors.Join), each naming its variable, never a secret.
func Load(getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	l := &loader{Loader: envconf.Loader{Getenv: getenv, ReadFile: readFile, Backends: vault.Sources}}
	c := &Config{}
	var f envconf.Faults
	var err error
	c.Service, err = l.Service()
	f.Add(err)
	c.TLS, err = mtls.Read(&l.Loader)
	f.Add(err)

	// Identity: the edge's assertion and/or a Keycloak JWT.
	c.Auth, err = svcauth.Read(&l.Loader, svcauth.Options{ServiceName: "mcp-tools", JWTOnlyInStrict: true})
	f.Add(err)

	n, err := l.Int("MCP_MAX_BODY_BYTES", 256<<10, 1<<10, 4<<20)
	bodyOK := f.Add(err)
	c.MaxBodyBytes = int64(n)
	c.ToolTimeout, err = l.seconds("TOOL_TIMEOUT_SECONDS", 60, 1, 600)
	toolOK := f.Add(err)

	c.FetchMaxBytes, err = l.Int("FETCH_URL_MAX_BYTES", 64<<10, 1<<10, 1<<20)
	f.Add(err)
	c.FetchTimeout, err = l.seconds("FETCH_URL_TIMEOUT_SECONDS", 10, 1, 120)
	if f.Add(err) && toolOK && c.FetchTimeout > c.ToolTimeout {
		f.Add(errors.New("FETCH_URL_TIMEOUT_SECONDS: exceeds TOOL_TIMEOUT_SECONDS"))
	}

	c.SandboxURL = l.Str("SANDBOX_URL", "")
	if c.SandboxURL != "" {
		if err := envconf.HTTPURL(c.SandboxURL); err != nil {
			f.Add(fmt.Errorf("SANDBOX_URL: %w", err))
		}
	}
	c.SandboxToken, err = l.secret("SANDBOX_TOKEN", MinSandboxToken)
	f.Add(err)
	c.SandboxTimeout, err = l.seconds("SANDBOX_TIMEOUT_SECONDS", 30, 1, 600)
	if f.Add(err) && toolOK && c.SandboxTimeout > c.ToolTimeout {
		f.Add(errors.New("SANDBOX_TIMEOUT_SECONDS: exceeds TOOL_TIMEOUT_SECONDS"))
	}
	c.SandboxMaxCodeBytes, err = l.Int("SANDBOX_MAX_CODE_BYTES", 64<<10, 1, 1<<20)
	if f.Add(err) && bodyOK && int64(c.SandboxMaxCodeBytes) >= c.MaxBodyBytes {
		f.Add(errors.New("SANDBOX_MAX_CODE_BYTES: must be below MCP_MAX_BODY_BYTES (the code travels inside an MCP request)"))
	}
	approve, err := l.Bool("SANDBOX_FUSION_REQUIRE_APPROVAL", true)
	if !f.Add(err) {
		approve = true // unreadable: the safe default for the checks after it
	}
	c.RequireApproval = approve
	c.ApprovalTTL, err = l.Duration("APPROVAL_TTL", 10*time.Minute, time.Minute, 24*time.Hour)
	f.Add(err)
	c.ApprovalMaxPending, err = l.Int("APPROVAL_MAX_PENDING", 1000, 1, 100000)
	pendingOK := f.Add(err)
	c.ApprovalMaxPendingUser, err = l.Int("APPROVAL_MAX_PENDING_PER_USER", 10, 1, 1000)
	if f.Add(err) && pendingOK && c.ApprovalMaxPendingUser > c.ApprovalMaxPending {
		f.Add(errors.New("APPROVAL_MAX_PENDING_PER_USER: exceeds APPROVAL_MAX_PENDING"))
	}

	c.AuditRedisAddr = l.Str("AUDIT_REDIS_ADDR", "")
	c.AuditRedisCluster, err = l.Bool("AUDIT_REDIS_CLUSTER", false)
	if f.Add(err) && c.AuditRedisCluster && c.AuditRedisAddr == "" {
		f.Add(errors.New("AUDIT_REDIS_CLUSTER: true without AUDIT_REDIS_ADDR"))
	}
	c.AuditRedisPassword, err = l.secret("AUDIT_REDIS_PASSWORD", 16)
	if f.Add(err) && c.AuditRedisPassword != nil && c.AuditRedisAddr == "" {
		f.Add(errors.New("AUDIT_REDIS_PASSWORD_FILE: set without AUDIT_REDIS_ADDR"))
	}
	c.Audit, err = audit.ReadStreamEnv(&l.Loader)
	f.Add(err)
	if err := f.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// loader is envconf's Loader with this service's helpers.
type loader struct {
	envconf.Loader
}

func (l *loader) seconds(name string, def, lo, hi int) (time.Duration, error) {
	n, err := l.Int(name, def, lo, hi)
	return time.Duration(n) * time.Second, err
}

// secret reads NAME_FILE, or NAME inline outside strict mode (pkg/envconf);
// unset is nil.
func (l *loader) secret(name string, minLen int) (Secret, error) {
	return l.Secret(name, envconf.SecretOpts{MinLen: minLen})
}

// FromEnv is Load with the process environment and file system.
func FromEnv() (*Config, error) { return Load(os.Getenv, os.ReadFile) }

// Package config reads llm-api's configuration from the environment.
// Secrets come from files (*_FILE); an inline value (API_KEY_PEPPER,
// INTERNAL_TOKEN, …) is accepted only with STRICT=false. In strict mode
// (the default) a missing, short or placeholder secret, AUTH_ENABLED=false,
// a missing edge JWKS (EDGE_IDENTITY_JWKS_FILE) or a missing dependency
// refuses the start, every fault at once, each naming its variable. Every
// variable is documented in the service README and config/README.md.
//
// It reads; it does not connect to anything.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/pkg/secrets/vault"
	"github.com/edgeguard/edgeguard/pkg/svcauth"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
)

// Secret is a secret value that never prints (pkg/envconf).
type Secret = envconf.Secret

// Config is llm-api's configuration.
type Config struct {
	// Strict, the listeners, TRUSTED_PROXIES and LOG_LEVEL.
	envconf.Service

	DatabaseURL Secret // may carry a password

	// RedisAddr is one host:port or a comma-separated list (a Cluster's
	// seeds); RedisCluster makes one address a Cluster seed too (the
	// deployments' single name for every node, e.g. redis:6379).
	RedisAddr     string
	RedisCluster  bool
	RedisPassword Secret

	// Audit: the stream (on REDIS_ADDR) llm-api emits to and consumes into
	// PostgreSQL, and how long stored events are kept. Without REDIS_ADDR
	// (STRICT=false only) audit is off.
	Audit              audit.StreamConfig
	AuditRetentionDays int

	KeycloakURL          string
	KeycloakRealm        string
	KeycloakClientID     string
	KeycloakClientSecret Secret
	KeycloakCacheTTL     time.Duration

	// Authentication: AUTH_*, SERVICE_NAME, EDGE_IDENTITY_JWKS_FILE.
	Auth svcauth.Config

	// The public listener's mTLS (pkg/mtls): TLS_CERT_FILE, TLS_KEY_FILE,
	// TLS_CLIENT_CA_FILE, TLS_CLIENT_IDENTITY; plain HTTP only with
	// INSECURE_PLAIN_HTTP=true, refused in strict mode.
	TLS mtls.Settings

	// Guest sessions (POST /auth/guest-login, /auth/refresh, /auth/logout).
	GuestLoginEnabled      bool
	GuestLoginClientID     string
	GuestLoginClientSecret Secret // nil outside strict mode: guest login off
	GuestLimitPerIP        []ratelimit.Limit
	GuestMaxPerHour        int
	GuestSessionLimitPerIP []ratelimit.Limit
	GuestTTL               time.Duration
	GuestCleanupInterval   time.Duration

	Pepper         Secret
	PepperPrevious Secret
	// InternalToken is the X-Internal-Token of the validate endpoint, and
	// InternalTokenPrevious (optional) the one it replaces, accepted during
	// a rotation's grace window. Both follow their source (a swapped file, a
	// new Vault version) every SECRETS_REFRESH_INTERVAL; emptying or
	// removing the previous one's file ends the grace window.
	InternalToken         *secrets.Value
	InternalTokenPrevious *secrets.Value

	// OpenAI-compatible upstream (/v1/models, /v1/chat/completions,
	// /v1/completions, /v1/embeddings). Empty LLMUpstreamURL: those routes
	// answer 503 llm_not_configured.
	LLMUpstreamURL           string
	LLMUpstreamAPIKey        Secret // optional
	LLMUpstreamTimeout       time.Duration
	LLMUpstreamHeaderTimeout time.Duration
	LLMMaxBodyBytes          int64
	// Budgets are LLM_BUDGETS_FILE's token and cost budgets (nil: none,
	// STRICT=false only; the model API is then unmetered), and
	// LLMBudgetOnRedisError what a request gets while Redis does not
	// answer: "deny" (503 budget_unavailable) or "allow" (charged to the
	// ledger only, flagged).
	Budgets               *budget.Config
	LLMBudgetOnRedisError string

	MaxKeysPerUser     int
	DefaultExpiresDays int
	MaxExpiresDays     int
	KeyEnv             string
	ValidateEmail      bool
}

// Minimum secret lengths.
const (
	MinPepperBytes       = 32
	MinInternalTokenLen  = 32
	MinClientSecretBytes = 16
	MinRedisPassword     = 16
	MinUpstreamKeyLen    = 8
)

// Load reads the configuration through getenv (os.Getenv in production)
// and readFile (os.ReadFile). Every fault is reported at once
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

	// database: DATABASE_URL_FILE, or DATABASE_URL
	c.DatabaseURL, err = l.secret("DATABASE_URL", 1, true)
	if f.Add(err) {
		f.Add(checkDSN(c.DatabaseURL, c.Strict))
	}

	c.RedisAddr = l.Str("REDIS_ADDR", "")
	if c.RedisAddr == "" && c.Strict {
		f.Add(errors.New("REDIS_ADDR: required in strict mode (revocations are announced to the edge on Redis)"))
	}
	c.RedisCluster, err = l.Bool("REDIS_CLUSTER", false)
	if f.Add(err) && c.RedisCluster && c.RedisAddr == "" && !c.Strict { // strict: REDIS_ADDR is the fault
		f.Add(errors.New("REDIS_CLUSTER: true without REDIS_ADDR"))
	}
	c.RedisPassword, err = l.secret("REDIS_PASSWORD", MinRedisPassword, c.Strict && c.RedisAddr != "")
	f.Add(err)

	c.Audit, err = audit.ReadStreamEnv(&l.Loader)
	f.Add(err)
	c.AuditRetentionDays, err = l.Int("AUDIT_RETENTION_DAYS", 90, 1, 3650)
	f.Add(err)

	c.KeycloakURL = l.Str("KEYCLOAK_URL", "")
	if c.KeycloakURL == "" {
		f.Add(errors.New("KEYCLOAK_URL: required (key roles are checked against the owner's current realm roles)"))
	} else if err := envconf.HTTPURL(c.KeycloakURL); err != nil {
		f.Add(fmt.Errorf("KEYCLOAK_URL: %w", err))
	}
	c.KeycloakRealm = l.Str("KEYCLOAK_REALM", "jan")
	c.KeycloakClientID = l.Str("KEYCLOAK_CLIENT_ID", "llm-api")
	c.KeycloakClientSecret, err = l.secret("KEYCLOAK_CLIENT_SECRET", MinClientSecretBytes, true)
	f.Add(err)
	ttl, err := l.Int("KEYCLOAK_CACHE_SECONDS", 30, 1, 60)
	f.Add(err)
	c.KeycloakCacheTTL = time.Duration(ttl) * time.Second

	c.Auth, err = svcauth.Read(&l.Loader, svcauth.Options{ServiceName: "llm-api", AcceptJWT: true, Switchable: true})
	f.Add(err)

	c.Pepper, err = l.secret("API_KEY_PEPPER", MinPepperBytes, true)
	pepperOK := f.Add(err)
	c.PepperPrevious, err = l.secret("API_KEY_PEPPER_PREVIOUS", MinPepperBytes, false)
	if f.Add(err) && pepperOK && c.PepperPrevious != nil && bytes.Equal(c.PepperPrevious, c.Pepper) {
		f.Add(errors.New("API_KEY_PEPPER_PREVIOUS_FILE: must differ from API_KEY_PEPPER_FILE"))
	}
	c.InternalToken, err = l.SecretValue("INTERNAL_TOKEN", envconf.SecretOpts{MinLen: MinInternalTokenLen, Required: true})
	tokenOK := f.Add(err)
	c.InternalTokenPrevious, err = l.SecretValue("INTERNAL_TOKEN_PREVIOUS", envconf.SecretOpts{MinLen: MinInternalTokenLen, AbsentOK: true})
	if f.Add(err) && tokenOK {
		if p := c.InternalTokenPrevious.Get(); p != nil && bytes.Equal(p, c.InternalToken.Get()) {
			f.Add(errors.New("INTERNAL_TOKEN_PREVIOUS_FILE: must differ from INTERNAL_TOKEN_FILE"))
		}
	}

	c.MaxKeysPerUser, err = l.Int("API_KEY_MAX_PER_USER", 10, 1, 1000)
	f.Add(err)
	c.MaxExpiresDays, err = l.Int("API_KEY_MAX_EXPIRES_DAYS", 365, 1, 3650)
	maxOK := f.Add(err)
	c.DefaultExpiresDays, err = l.Int("API_KEY_DEFAULT_EXPIRES_DAYS", 90, 1, 3650)
	if f.Add(err) && maxOK && c.DefaultExpiresDays > c.MaxExpiresDays {
		f.Add(errors.New("API_KEY_DEFAULT_EXPIRES_DAYS: exceeds API_KEY_MAX_EXPIRES_DAYS"))
	}
	c.KeyEnv = l.Str("API_KEY_ENV", "live")
	if c.KeyEnv != "live" && c.KeyEnv != "test" && c.KeyEnv != "none" {
		f.Add(fmt.Errorf("API_KEY_ENV: %q is not live, test or none", c.KeyEnv))
	}
	c.ValidateEmail, err = l.Bool("API_KEY_VALIDATE_INCLUDE_EMAIL", false)
	f.Add(err)
	l.guests(c, &f)
	l.llm(c, &f)
	if err := f.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// llm reads the upstream model server's variables. LLM_UPSTREAM_URL is
// optional in every mode (a deployment may run llm-api for keys and guests
// only); the app logs when it is unset.
func (l *loader) llm(c *Config, f *envconf.Faults) {
	c.LLMUpstreamURL = l.Str("LLM_UPSTREAM_URL", "")
	if c.LLMUpstreamURL != "" {
		if err := envconf.HTTPURL(c.LLMUpstreamURL); err != nil {
			f.Add(fmt.Errorf("LLM_UPSTREAM_URL: %w", err))
		}
	}
	var err error
	c.LLMUpstreamAPIKey, err = l.secret("LLM_UPSTREAM_API_KEY", MinUpstreamKeyLen, false)
	f.Add(err)
	c.LLMUpstreamTimeout, err = l.Duration("LLM_UPSTREAM_TIMEOUT", 120*time.Second, time.Second, time.Hour)
	timeoutOK := f.Add(err)
	c.LLMUpstreamHeaderTimeout, err = l.Duration("LLM_UPSTREAM_HEADER_TIMEOUT", c.LLMUpstreamTimeout, time.Second, time.Hour)
	if f.Add(err) && timeoutOK && c.LLMUpstreamHeaderTimeout > c.LLMUpstreamTimeout {
		f.Add(errors.New("LLM_UPSTREAM_HEADER_TIMEOUT: exceeds LLM_UPSTREAM_TIMEOUT"))
	}
	n, err := l.Int("LLM_MAX_BODY_BYTES", 10<<20, 1<<10, 100<<20)
	f.Add(err)
	c.LLMMaxBodyBytes = int64(n)

	if path := l.Str("LLM_BUDGETS_FILE", ""); path != "" {
		data, err := l.ReadFile(path)
		switch {
		case err != nil:
			f.Add(errors.New("LLM_BUDGETS_FILE: cannot be read"))
		default:
			b, err := budget.Parse(bytes.NewReader(data))
			if err != nil {
				// every fault of the file, each naming its field
				f.Add(fmt.Errorf("LLM_BUDGETS_FILE: %w", err))
			} else {
				c.Budgets = &b
			}
		}
		if c.RedisAddr == "" && !c.Strict { // strict: REDIS_ADDR is the fault already
			f.Add(errors.New("LLM_BUDGETS_FILE: budgets are kept in Redis: set REDIS_ADDR"))
		}
	} else if c.Strict && c.LLMUpstreamURL != "" {
		f.Add(errors.New("LLM_BUDGETS_FILE: required in strict mode while LLM_UPSTREAM_URL is set (the model API is never unmetered in production)"))
	}
	c.LLMBudgetOnRedisError = l.Str("LLM_BUDGET_ON_REDIS_ERROR", "deny")
	if c.LLMBudgetOnRedisError != "deny" && c.LLMBudgetOnRedisError != "allow" {
		f.Add(fmt.Errorf("LLM_BUDGET_ON_REDIS_ERROR: %q is not deny or allow", c.LLMBudgetOnRedisError))
	}
}

// guests reads the guest-session variables. The guest-login client secret
// is required in strict mode while guest login is enabled; outside strict
// mode a missing one turns guest login off (the app says so in its log).
// An unreadable GUEST_LOGIN_ENABLED counts as true (its default) for the
// checks after it.
func (l *loader) guests(c *Config, f *envconf.Faults) {
	enabled, err := l.Bool("GUEST_LOGIN_ENABLED", true)
	if !f.Add(err) {
		enabled = true
	}
	c.GuestLoginEnabled = enabled
	c.GuestLoginClientID = l.Str("GUEST_LOGIN_CLIENT_ID", "guest-login")
	if !safeClientID(c.GuestLoginClientID) {
		f.Add(fmt.Errorf("GUEST_LOGIN_CLIENT_ID: %q is not a client id ([A-Za-z0-9._-])", c.GuestLoginClientID))
	}
	c.GuestLoginClientSecret, err = l.secret("GUEST_LOGIN_CLIENT_SECRET", MinClientSecretBytes, c.GuestLoginEnabled && c.Strict)
	f.Add(err)
	c.GuestLimitPerIP, err = l.limits("GUEST_LOGIN_LIMIT_PER_IP", "5/h")
	f.Add(err)
	c.GuestMaxPerHour, err = l.Int("GUEST_MAX_PER_HOUR", 1000, 1, 1_000_000)
	f.Add(err)
	c.GuestSessionLimitPerIP, err = l.limits("GUEST_SESSION_LIMIT_PER_IP", "60/min")
	f.Add(err)
	c.GuestTTL, err = l.Duration("GUEST_TTL", 24*time.Hour, 10*time.Minute, 30*24*time.Hour)
	f.Add(err)
	c.GuestCleanupInterval, err = l.Duration("GUEST_CLEANUP_INTERVAL", 10*time.Minute, 10*time.Second, 24*time.Hour)
	f.Add(err)
}

func (l *loader) limits(name, def string) ([]ratelimit.Limit, error) {
	spec := l.Str(name, def)
	lims, err := ratelimit.ParseLimits(spec)
	if err == nil {
		_, err = ratelimit.NewPolicy(lims...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a limit list like \"5/h\" or \"10/min, 100/h\"", name, spec)
	}
	return lims, nil
}

// safeClientID: a Keycloak client id, [A-Za-z0-9._-]{1,255}.
func safeClientID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// PepperID names a pepper without revealing it: "p" + the first 12 hex
// digits of SHA-256 over a domain prefix and the pepper. Stored next to
// each hash, it selects the pepper that verifies it.
func PepperID(pepper []byte) string {
	h := sha256.New()
	h.Write([]byte("edgeguard/llm-api/pepper-id\x00"))
	h.Write(pepper)
	return "p" + hex.EncodeToString(h.Sum(nil))[:12]
}

// loader is envconf's Loader with llm-api's secret rules.
type loader struct {
	envconf.Loader
}

// secret reads NAME_FILE, or NAME inline outside strict mode (pkg/envconf).
// DATABASE_URL is configuration that may carry a password: accepted inline
// in strict mode too (a managed database's URL), without the placeholder
// check (checkDSN looks at its password). A pepper shorter than its minimum
// is refused in every mode: it would make weak HMACs.
func (l *loader) secret(name string, minLen int, required bool) (Secret, error) {
	return l.Secret(name, envconf.SecretOpts{
		MinLen:       minLen,
		Required:     required,
		InlineOK:     name == "DATABASE_URL",
		AlwaysMinLen: name == "API_KEY_PEPPER" || name == "API_KEY_PEPPER_PREVIOUS",
	})
}

func checkDSN(dsn Secret, strict bool) error {
	s := string(dsn)
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return nil // key=value form: pgx parses it; passwords there are not checked
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("DATABASE_URL: not a valid postgres:// URL")
	}
	if pw, ok := u.User.Password(); ok && strict && envconf.IsPlaceholder([]byte(pw)) {
		return errors.New("DATABASE_URL: the database password is a placeholder or default value")
	}
	return nil
}

// FromEnv is Load with the process environment and file system.
func FromEnv() (*Config, error) { return Load(os.Getenv, os.ReadFile) }

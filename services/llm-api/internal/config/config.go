// Package config reads llm-api's configuration from the environment.
// Secrets come from files (*_FILE); an inline value (API_KEY_PEPPER,
// INTERNAL_TOKEN, …) is accepted only with STRICT=false. In strict mode
// (the default) a missing, short or placeholder secret, AUTH_ENABLED=false,
// a missing edge JWKS (EDGE_IDENTITY_JWKS_FILE) or a missing dependency
// refuses the start with one error naming the variable. Every variable is documented in the service README and
// config/README.md.
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
	"strconv"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/rs/zerolog"
)

// Secret is a secret value that never prints.
type Secret []byte

func (s Secret) String() string { return "[secret]" }

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return "config.Secret([secret])" }

// MarshalJSON never encodes the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// Config is llm-api's configuration.
type Config struct {
	Strict bool

	ListenAddr         string
	InternalListenAddr string
	TrustedProxies     []string
	LogLevel           zerolog.Level

	DatabaseURL Secret // may carry a password

	RedisAddr     string
	RedisPassword Secret

	KeycloakURL          string
	KeycloakRealm        string
	KeycloakClientID     string
	KeycloakClientSecret Secret
	KeycloakCacheTTL     time.Duration

	AuthEnabled    bool
	AuthIssuer     string
	AuthAudience   []string
	AuthJWKSURL    string
	AuthAllowedAZP []string
	// AuthAcceptJWT: a request without X-Edge-Identity may authenticate
	// with a Keycloak access token the service verifies itself.
	AuthAcceptJWT bool

	// ServiceName is this service's name at the edge: the aud of the
	// X-Edge-Identity assertions it accepts (the plugins' upstream_name).
	ServiceName string
	// EdgeIdentityJWKSFile names the edge's public JWKS; EdgeIdentityJWKS is
	// its content (validated). Both empty: no assertion is accepted.
	EdgeIdentityJWKSFile string
	EdgeIdentityJWKS     []byte

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
	InternalToken  Secret

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
)

// placeholders are values that mark an unset secret.
var placeholders = []string{"changeme", "change-me", "change_me", "secret", "password", "default", "example",
	"admin", "postgres", "test", "xxx", "todo", "replace-me", "replaceme", "insecure"}

func isPlaceholder(v []byte) bool {
	s := strings.ToLower(string(v))
	for _, p := range placeholders {
		if s == p {
			return true
		}
	}
	if strings.Contains(s, "changeme") || strings.Contains(s, "change-me") || strings.Contains(s, "change_me") {
		return true
	}
	// one repeated character
	return len(s) > 0 && strings.Count(s, s[:1]) == len(s)
}

// Load reads the configuration through getenv (os.Getenv in production)
// and readFile (os.ReadFile).
func Load(getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	l := loader{getenv: getenv, readFile: readFile}
	c := &Config{}
	var err error
	if c.Strict, err = l.boolean("STRICT", true); err != nil {
		return nil, err
	}
	l.strict = c.Strict

	c.ListenAddr = l.str("LISTEN_ADDR", ":8080")
	c.InternalListenAddr = l.str("INTERNAL_LISTEN_ADDR", ":8081")
	if c.ListenAddr == c.InternalListenAddr {
		return nil, errors.New("INTERNAL_LISTEN_ADDR: must differ from LISTEN_ADDR (internal endpoints listen on their own port)")
	}
	c.TrustedProxies = l.list("TRUSTED_PROXIES")
	for _, p := range c.TrustedProxies {
		if p == "*" || p == "0.0.0.0/0" || p == "::/0" {
			return nil, errors.New("TRUSTED_PROXIES: must list the gateway's addresses, never every address")
		}
	}
	lvl := l.str("LOG_LEVEL", "info")
	if c.LogLevel, err = zerolog.ParseLevel(lvl); err != nil || lvl == "" {
		return nil, fmt.Errorf("LOG_LEVEL: %q is not one of trace, debug, info, warn, error", lvl)
	}

	// database: DATABASE_URL_FILE, or DATABASE_URL
	if c.DatabaseURL, err = l.secret("DATABASE_URL", 1, true); err != nil {
		return nil, err
	}
	if err := checkDSN(c.DatabaseURL, c.Strict); err != nil {
		return nil, err
	}

	c.RedisAddr = l.str("REDIS_ADDR", "")
	if c.RedisAddr == "" && c.Strict {
		return nil, errors.New("REDIS_ADDR: required in strict mode (revocations are announced to the edge on Redis)")
	}
	if c.RedisPassword, err = l.secret("REDIS_PASSWORD", MinRedisPassword, c.Strict && c.RedisAddr != ""); err != nil {
		return nil, err
	}

	c.KeycloakURL = l.str("KEYCLOAK_URL", "")
	if c.KeycloakURL == "" {
		return nil, errors.New("KEYCLOAK_URL: required (key roles are checked against the owner's current realm roles)")
	}
	if err := checkHTTPURL(c.KeycloakURL); err != nil {
		return nil, fmt.Errorf("KEYCLOAK_URL: %w", err)
	}
	c.KeycloakRealm = l.str("KEYCLOAK_REALM", "jan")
	c.KeycloakClientID = l.str("KEYCLOAK_CLIENT_ID", "llm-api")
	if c.KeycloakClientSecret, err = l.secret("KEYCLOAK_CLIENT_SECRET", MinClientSecretBytes, true); err != nil {
		return nil, err
	}
	ttl, err := l.integer("KEYCLOAK_CACHE_SECONDS", 30, 1, 60)
	if err != nil {
		return nil, err
	}
	c.KeycloakCacheTTL = time.Duration(ttl) * time.Second

	if c.AuthEnabled, err = l.boolean("AUTH_ENABLED", true); err != nil {
		return nil, err
	}
	if !c.AuthEnabled && c.Strict {
		return nil, errors.New("AUTH_ENABLED: cannot be false in strict mode")
	}
	c.AuthIssuer = l.str("AUTH_ISSUER", "")
	c.AuthAudience = l.listDefault("AUTH_AUDIENCE", []string{"jan-api"})
	c.AuthJWKSURL = l.str("AUTH_JWKS_URL", "")
	c.AuthAllowedAZP = l.listDefault("AUTH_ALLOWED_AZP", []string{"jan-cli", "jan-web", "guest-login"})
	if c.AuthAcceptJWT, err = l.boolean("AUTH_ACCEPT_JWT", true); err != nil {
		return nil, err
	}
	if err := l.edgeIdentity(c); err != nil {
		return nil, err
	}
	if c.AuthEnabled && c.AuthAcceptJWT {
		if c.AuthIssuer == "" {
			return nil, errors.New("AUTH_ISSUER: required when AUTH_ENABLED and AUTH_ACCEPT_JWT are true")
		}
		if err := checkHTTPURL(c.AuthIssuer); err != nil {
			return nil, fmt.Errorf("AUTH_ISSUER: %w", err)
		}
		if c.AuthJWKSURL != "" {
			if err := checkHTTPURL(c.AuthJWKSURL); err != nil {
				return nil, fmt.Errorf("AUTH_JWKS_URL: %w", err)
			}
		}
	}

	if c.Pepper, err = l.secret("API_KEY_PEPPER", MinPepperBytes, true); err != nil {
		return nil, err
	}
	if c.PepperPrevious, err = l.secret("API_KEY_PEPPER_PREVIOUS", MinPepperBytes, false); err != nil {
		return nil, err
	}
	if c.PepperPrevious != nil && bytes.Equal(c.PepperPrevious, c.Pepper) {
		return nil, errors.New("API_KEY_PEPPER_PREVIOUS_FILE: must differ from API_KEY_PEPPER_FILE")
	}
	if c.InternalToken, err = l.secret("INTERNAL_TOKEN", MinInternalTokenLen, true); err != nil {
		return nil, err
	}

	if c.MaxKeysPerUser, err = l.integer("API_KEY_MAX_PER_USER", 10, 1, 1000); err != nil {
		return nil, err
	}
	if c.MaxExpiresDays, err = l.integer("API_KEY_MAX_EXPIRES_DAYS", 365, 1, 3650); err != nil {
		return nil, err
	}
	if c.DefaultExpiresDays, err = l.integer("API_KEY_DEFAULT_EXPIRES_DAYS", 90, 1, 3650); err != nil {
		return nil, err
	}
	if c.DefaultExpiresDays > c.MaxExpiresDays {
		return nil, errors.New("API_KEY_DEFAULT_EXPIRES_DAYS: exceeds API_KEY_MAX_EXPIRES_DAYS")
	}
	c.KeyEnv = l.str("API_KEY_ENV", "live")
	if c.KeyEnv != "live" && c.KeyEnv != "test" && c.KeyEnv != "none" {
		return nil, fmt.Errorf("API_KEY_ENV: %q is not live, test or none", c.KeyEnv)
	}
	if c.ValidateEmail, err = l.boolean("API_KEY_VALIDATE_INCLUDE_EMAIL", false); err != nil {
		return nil, err
	}
	if err := l.guests(c); err != nil {
		return nil, err
	}
	return c, nil
}

// edgeIdentity reads SERVICE_NAME and EDGE_IDENTITY_JWKS_FILE. In strict
// mode with AUTH_ENABLED the JWKS file is required: services take identity
// from the edge's assertion. Without it, AUTH_ACCEPT_JWT must be true.
func (l *loader) edgeIdentity(c *Config) error {
	c.ServiceName = l.str("SERVICE_NAME", "llm-api")
	if !safeName(c.ServiceName) {
		return fmt.Errorf("SERVICE_NAME: %q is not 1-64 characters of [a-z0-9-]", c.ServiceName)
	}
	c.EdgeIdentityJWKSFile = l.str("EDGE_IDENTITY_JWKS_FILE", "")
	if c.EdgeIdentityJWKSFile == "" {
		switch {
		case !c.AuthEnabled:
		case c.Strict:
			return errors.New("EDGE_IDENTITY_JWKS_FILE: required in strict mode (the edge's public keys for X-Edge-Identity)")
		case !c.AuthAcceptJWT:
			return errors.New("AUTH_ACCEPT_JWT: false needs EDGE_IDENTITY_JWKS_FILE (no credential would be accepted)")
		}
		return nil
	}
	b, err := l.readFile(c.EdgeIdentityJWKSFile)
	if err != nil {
		return fmt.Errorf("EDGE_IDENTITY_JWKS_FILE: cannot read %s", c.EdgeIdentityJWKSFile)
	}
	if _, err := edgeid.NewVerifier(b, c.ServiceName, nil); err != nil {
		return fmt.Errorf("EDGE_IDENTITY_JWKS_FILE: %s is not a JWKS of Ed25519 public keys", c.EdgeIdentityJWKSFile)
	}
	c.EdgeIdentityJWKS = b
	return nil
}

// guests reads the guest-session variables. The guest-login client secret
// is required in strict mode while guest login is enabled; outside strict
// mode a missing one turns guest login off (the app says so in its log).
func (l *loader) guests(c *Config) error {
	var err error
	if c.GuestLoginEnabled, err = l.boolean("GUEST_LOGIN_ENABLED", true); err != nil {
		return err
	}
	c.GuestLoginClientID = l.str("GUEST_LOGIN_CLIENT_ID", "guest-login")
	if !safeClientID(c.GuestLoginClientID) {
		return fmt.Errorf("GUEST_LOGIN_CLIENT_ID: %q is not a client id ([A-Za-z0-9._-])", c.GuestLoginClientID)
	}
	if c.GuestLoginClientSecret, err = l.secret("GUEST_LOGIN_CLIENT_SECRET", MinClientSecretBytes, c.GuestLoginEnabled && c.Strict); err != nil {
		return err
	}
	if c.GuestLimitPerIP, err = l.limits("GUEST_LOGIN_LIMIT_PER_IP", "5/h"); err != nil {
		return err
	}
	if c.GuestMaxPerHour, err = l.integer("GUEST_MAX_PER_HOUR", 1000, 1, 1_000_000); err != nil {
		return err
	}
	if c.GuestSessionLimitPerIP, err = l.limits("GUEST_SESSION_LIMIT_PER_IP", "60/min"); err != nil {
		return err
	}
	if c.GuestTTL, err = l.duration("GUEST_TTL", 24*time.Hour, 10*time.Minute, 30*24*time.Hour); err != nil {
		return err
	}
	if c.GuestCleanupInterval, err = l.duration("GUEST_CLEANUP_INTERVAL", 10*time.Minute, 10*time.Second, 24*time.Hour); err != nil {
		return err
	}
	return nil
}

func (l *loader) limits(name, def string) ([]ratelimit.Limit, error) {
	spec := l.str(name, def)
	lims, err := ratelimit.ParseLimits(spec)
	if err == nil {
		_, err = ratelimit.NewPolicy(lims...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a limit list like \"5/h\" or \"10/min, 100/h\"", name, spec)
	}
	return lims, nil
}

func (l *loader) duration(name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(l.getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s: %q is not a duration in %s..%s (e.g. 24h, 90m)", name, v, lo, hi)
	}
	return d, nil
}

// safeName: a service name, [a-z0-9-]{1,64}.
func safeName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
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

type loader struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	strict   bool
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) list(name string) []string {
	var out []string
	for v := range strings.SplitSeq(l.getenv(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (l *loader) listDefault(name string, def []string) []string {
	if v := l.list(name); len(v) > 0 {
		return v
	}
	return def
}

func (l *loader) boolean(name string, def bool) (bool, error) {
	v := strings.TrimSpace(l.getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", name, v)
	}
	return b, nil
}

func (l *loader) integer(name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(l.getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: %q is not an integer in %d..%d", name, v, lo, hi)
	}
	return n, nil
}

// secret reads NAME_FILE (trailing newline and spaces trimmed), or the
// inline NAME outside strict mode. required: missing is an error. Short or
// placeholder values are refused in strict mode.
func (l *loader) secret(name string, minLen int, required bool) (Secret, error) {
	fileVar := name + "_FILE"
	path := strings.TrimSpace(l.getenv(fileVar))
	inline := l.getenv(name)
	var v []byte
	switch {
	case path != "":
		b, err := l.readFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read %s", fileVar, path)
		}
		v = bytes.TrimSpace(b)
		if len(v) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", fileVar, path)
		}
	case inline != "":
		// DATABASE_URL is configuration that may carry a password: accepted
		// inline in strict mode too (a managed database's URL).
		if l.strict && name != "DATABASE_URL" {
			return nil, fmt.Errorf("%s: set %s (a file); an inline value is accepted only with STRICT=false", name, fileVar)
		}
		v = []byte(strings.TrimSpace(inline))
	default:
		if required {
			return nil, fmt.Errorf("%s: required", fileVar)
		}
		return nil, nil
	}
	if len(v) < minLen {
		if l.strict {
			return nil, fmt.Errorf("%s: %d bytes, at least %d required", fileVar, len(v), minLen)
		}
		if name == "API_KEY_PEPPER" || name == "API_KEY_PEPPER_PREVIOUS" {
			return nil, fmt.Errorf("%s: %d bytes, at least %d required", fileVar, len(v), minLen)
		}
	}
	if l.strict && name != "DATABASE_URL" && isPlaceholder(v) {
		return nil, fmt.Errorf("%s: a placeholder or default value; generate a random secret", fileVar)
	}
	return Secret(v), nil
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
	if pw, ok := u.User.Password(); ok && strict && isPlaceholder([]byte(pw)) {
		return errors.New("DATABASE_URL: the database password is a placeholder or default value")
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not carry credentials, a query or a fragment")
	}
	return nil
}

// FromEnv is Load with the process environment and file system.
func FromEnv() (*Config, error) { return Load(os.Getenv, os.ReadFile) }

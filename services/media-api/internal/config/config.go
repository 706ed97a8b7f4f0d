// Package config reads media-api's configuration from the environment.
// The URL signing key comes from a file (MEDIA_URL_SIGNING_KEY_FILE); the
// inline MEDIA_URL_SIGNING_KEY is accepted only with STRICT=false. In strict
// mode (the default) a missing, short or placeholder key, AUTH_ENABLED=false
// or a missing edge JWKS (EDGE_IDENTITY_JWKS_FILE) refuses the start with
// one error naming the variable — never showing a secret. Every variable is
// documented in the service README and config/README.md.
//
// It reads; it opens no listener and touches no storage.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/rs/zerolog"
)

// Secret is a secret value that never prints.
type Secret []byte

func (s Secret) String() string { return "[secret]" }

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return "config.Secret([secret])" }

// MarshalJSON never encodes the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// Config is media-api's configuration.
type Config struct {
	Strict bool

	ListenAddr         string
	InternalListenAddr string
	TrustedProxies     []string
	LogLevel           zerolog.Level

	// Authentication: the edge's X-Edge-Identity assertion, and/or (with
	// AuthAcceptJWT) a Keycloak access token verified here.
	AuthEnabled          bool
	AuthAcceptJWT        bool
	AuthIssuer           string
	AuthAudience         []string
	AuthJWKSURL          string
	AuthAllowedAZP       []string
	ServiceName          string
	EdgeIdentityJWKSFile string
	EdgeIdentityJWKS     []byte

	StorageDir      string
	MaxBytes        int64
	URLSigningKey   Secret
	URLTTL          time.Duration
	PublicBaseURL   string
	Retention       time.Duration
	CleanupInterval time.Duration

	FetchEnabled      bool
	FetchTimeout      time.Duration
	FetchMaxRedirects int
}

// Limits.
const (
	MinSigningKeyBytes = 32
	DefaultMaxBytes    = 20 << 20
	MinMaxBytes        = 4 << 10
	MaxMaxBytes        = 1 << 30
)

// placeholders are values that mark an unset secret.
var placeholders = []string{"changeme", "change-me", "change_me", "secret", "password", "default", "example",
	"admin", "test", "xxx", "todo", "replace-me", "replaceme", "insecure"}

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
	return len(s) > 0 && strings.Count(s, s[:1]) == len(s) // one repeated character
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

	if err := l.auth(c); err != nil {
		return nil, err
	}

	c.StorageDir = l.str("MEDIA_STORAGE_DIR", "")
	if c.StorageDir == "" {
		return nil, errors.New("MEDIA_STORAGE_DIR: required (the directory that holds the media)")
	}
	n, err := l.integer("MEDIA_MAX_BYTES", DefaultMaxBytes, MinMaxBytes, MaxMaxBytes)
	if err != nil {
		return nil, err
	}
	c.MaxBytes = int64(n)
	if c.URLSigningKey, err = l.secret("MEDIA_URL_SIGNING_KEY", MinSigningKeyBytes); err != nil {
		return nil, err
	}
	if c.URLTTL, err = l.duration("MEDIA_URL_TTL", 5*time.Minute, 10*time.Second, 24*time.Hour); err != nil {
		return nil, err
	}
	if c.PublicBaseURL = strings.TrimSuffix(l.str("MEDIA_PUBLIC_BASE_URL", ""), "/"); c.PublicBaseURL != "" {
		if err := checkBaseURL(c.PublicBaseURL); err != nil {
			return nil, fmt.Errorf("MEDIA_PUBLIC_BASE_URL: %w", err)
		}
	}
	days, err := l.integer("MEDIA_RETENTION_DAYS", 30, 1, 3650)
	if err != nil {
		return nil, err
	}
	c.Retention = time.Duration(days) * 24 * time.Hour
	if c.CleanupInterval, err = l.duration("MEDIA_CLEANUP_INTERVAL", time.Hour, time.Minute, 24*time.Hour); err != nil {
		return nil, err
	}

	if c.FetchEnabled, err = l.boolean("MEDIA_FETCH_ENABLED", false); err != nil {
		return nil, err
	}
	if c.FetchTimeout, err = l.duration("MEDIA_FETCH_TIMEOUT", 10*time.Second, time.Second, 2*time.Minute); err != nil {
		return nil, err
	}
	if c.FetchMaxRedirects, err = l.integer("MEDIA_FETCH_MAX_REDIRECTS", 3, 0, 10); err != nil {
		return nil, err
	}
	return c, nil
}

// auth reads the authentication variables. In strict mode AUTH_ENABLED must
// stay true and the edge's JWKS is required; outside strict mode a missing
// JWKS needs AUTH_ACCEPT_JWT=true (else no credential would be accepted).
func (l *loader) auth(c *Config) error {
	var err error
	if c.AuthEnabled, err = l.boolean("AUTH_ENABLED", true); err != nil {
		return err
	}
	if !c.AuthEnabled && c.Strict {
		return errors.New("AUTH_ENABLED: cannot be false in strict mode")
	}
	if c.AuthAcceptJWT, err = l.boolean("AUTH_ACCEPT_JWT", false); err != nil {
		return err
	}
	c.AuthIssuer = l.str("AUTH_ISSUER", "")
	c.AuthAudience = l.listDefault("AUTH_AUDIENCE", []string{"jan-api"})
	c.AuthJWKSURL = l.str("AUTH_JWKS_URL", "")
	c.AuthAllowedAZP = l.listDefault("AUTH_ALLOWED_AZP", []string{"jan-cli", "jan-web", "guest-login"})
	if c.AuthEnabled && c.AuthAcceptJWT {
		if c.AuthIssuer == "" {
			return errors.New("AUTH_ISSUER: required when AUTH_ACCEPT_JWT is true")
		}
		if err := checkHTTPURL(c.AuthIssuer); err != nil {
			return fmt.Errorf("AUTH_ISSUER: %w", err)
		}
		if c.AuthJWKSURL != "" {
			if err := checkHTTPURL(c.AuthJWKSURL); err != nil {
				return fmt.Errorf("AUTH_JWKS_URL: %w", err)
			}
		}
	}
	c.ServiceName = l.str("SERVICE_NAME", "media-api")
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
			return errors.New("EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT is true (no credential would be accepted)")
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

func (l *loader) duration(name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(l.getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s: %q is not a duration in %s..%s (e.g. 5m, 90s)", name, v, lo, hi)
	}
	return d, nil
}

// secret reads NAME_FILE (surrounding whitespace trimmed), or the inline
// NAME outside strict mode. It is always required; shorter than minLen is
// refused in every mode, a placeholder in strict mode.
func (l *loader) secret(name string, minLen int) (Secret, error) {
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
		if l.strict {
			return nil, fmt.Errorf("%s: set %s (a file); an inline value is accepted only with STRICT=false", name, fileVar)
		}
		v = []byte(strings.TrimSpace(inline))
	default:
		return nil, fmt.Errorf("%s: required", fileVar)
	}
	if len(v) < minLen {
		return nil, fmt.Errorf("%s: %d bytes, at least %d required", fileVar, len(v), minLen)
	}
	if l.strict && isPlaceholder(v) {
		return nil, fmt.Errorf("%s: a placeholder or default value; generate a random secret", fileVar)
	}
	return Secret(v), nil
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

// checkBaseURL: an http(s) origin, optionally with a path prefix.
func checkBaseURL(s string) error {
	if err := checkHTTPURL(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "?#") {
		return errors.New("must not carry a query or a fragment")
	}
	return nil
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

// FromEnv is Load with the process environment and file system.
func FromEnv() (*Config, error) { return Load(os.Getenv, os.ReadFile) }

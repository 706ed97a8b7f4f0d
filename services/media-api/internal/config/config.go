// Package config reads media-api's configuration from the environment.
// The URL signing key comes from a file (MEDIA_URL_SIGNING_KEY_FILE); the
// inline MEDIA_URL_SIGNING_KEY is accepted only with STRICT=false. In strict
// mode (the default) a missing, short or placeholder key, AUTH_ENABLED=false
// or a missing edge JWKS (EDGE_IDENTITY_JWKS_FILE) refuses the start, every
// fault at once, each naming its variable — never showing a secret. Every variable is
// documented in the service README and config/README.md.
//
// It reads; it opens no listener and touches no storage.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/secrets/vault"
	"github.com/edgeguard/edgeguard/pkg/svcauth"
)

// Secret is a secret value that never prints (pkg/envconf).
type Secret = envconf.Secret

// Config is media-api's configuration.
type Config struct {
	// Strict, the listeners, TRUSTED_PROXIES and LOG_LEVEL.
	envconf.Service

	// Authentication: AUTH_*, SERVICE_NAME, EDGE_IDENTITY_JWKS_FILE.
	Auth svcauth.Config

	// The public listener's mTLS (pkg/mtls): TLS_CERT_FILE, TLS_KEY_FILE,
	// TLS_CLIENT_CA_FILE, TLS_CLIENT_IDENTITY; plain HTTP only with
	// INSECURE_PLAIN_HTTP=true, refused in strict mode.
	TLS mtls.Settings

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

// Load reads the configuration through getenv (os.Getenv in production)
// and readFile (os.ReadFile). Every fault is reported at once
// (errors.Join), each naming its variable, never a secret.
func Load(getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	l := &envconf.Loader{Getenv: getenv, ReadFile: readFile, Backends: vault.Sources}
	c := &Config{}
	var f envconf.Faults
	var err error
	c.Service, err = l.Service()
	f.Add(err)
	c.TLS, err = mtls.Read(l)
	f.Add(err)

	c.Auth, err = svcauth.Read(l, svcauth.Options{ServiceName: "media-api", Switchable: true})
	f.Add(err)

	c.StorageDir = l.Str("MEDIA_STORAGE_DIR", "")
	if c.StorageDir == "" {
		f.Add(errors.New("MEDIA_STORAGE_DIR: required (the directory that holds the media)"))
	}
	n, err := l.Int("MEDIA_MAX_BYTES", DefaultMaxBytes, MinMaxBytes, MaxMaxBytes)
	f.Add(err)
	c.MaxBytes = int64(n)
	// A short key is unusable in every mode (signedurl refuses it).
	c.URLSigningKey, err = l.Secret("MEDIA_URL_SIGNING_KEY", envconf.SecretOpts{MinLen: MinSigningKeyBytes,
		Required: true, AlwaysMinLen: true})
	f.Add(err)
	c.URLTTL, err = l.Duration("MEDIA_URL_TTL", 5*time.Minute, 10*time.Second, 24*time.Hour)
	f.Add(err)
	if c.PublicBaseURL = strings.TrimSuffix(l.Str("MEDIA_PUBLIC_BASE_URL", ""), "/"); c.PublicBaseURL != "" {
		if err := checkBaseURL(c.PublicBaseURL); err != nil {
			f.Add(fmt.Errorf("MEDIA_PUBLIC_BASE_URL: %w", err))
		}
	}
	days, err := l.Int("MEDIA_RETENTION_DAYS", 30, 1, 3650)
	f.Add(err)
	c.Retention = time.Duration(days) * 24 * time.Hour
	c.CleanupInterval, err = l.Duration("MEDIA_CLEANUP_INTERVAL", time.Hour, time.Minute, 24*time.Hour)
	f.Add(err)

	c.FetchEnabled, err = l.Bool("MEDIA_FETCH_ENABLED", false)
	f.Add(err)
	c.FetchTimeout, err = l.Duration("MEDIA_FETCH_TIMEOUT", 10*time.Second, time.Second, 2*time.Minute)
	f.Add(err)
	c.FetchMaxRedirects, err = l.Int("MEDIA_FETCH_MAX_REDIRECTS", 3, 0, 10)
	f.Add(err)
	if err := f.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkBaseURL: an http(s) origin, optionally with a path prefix.
func checkBaseURL(s string) error {
	if err := envconf.HTTPURL(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "?#") {
		return errors.New("must not carry a query or a fragment")
	}
	return nil
}

// FromEnv is Load with the process environment and file system.
func FromEnv() (*Config, error) { return Load(os.Getenv, os.ReadFile) }

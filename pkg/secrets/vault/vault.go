// Package vault is pkg/secrets' HashiCorp Vault backend: KV version 2
// secrets read with github.com/hashicorp/vault/api, authenticated with a
// token from a file (VAULT_TOKEN_FILE, e.g. a Vault Agent sink) or with
// AppRole (VAULT_ROLE_ID_FILE and VAULT_SECRET_ID_FILE). It lives in its own
// package so that binaries that do not read Vault do not link its client.
//
// The secret named by the variable NAME is the field "value" of the KV v2
// secret at <VAULT_MOUNT>/<VAULT_PREFIX>/<NAME> (API path
// /v1/<mount>/data/<prefix>/<NAME>). A 404 is "not here" (the next backend is
// asked); a Vault that cannot be reached, times out or answers 5xx (sealed,
// standby) is "unavailable" (the next backend, typically the file, is the
// fallback) and is not asked again for DownFor; 403 after one fresh login,
// or a secret without a string field "value", is an error that stops the
// search.
//
// It never logs, and its errors never carry a token or a value.
package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/secrets"
)

// Field is the KV v2 data field that holds a secret's value.
const Field = "value"

// Defaults.
const (
	DefaultMount   = "secret"
	DefaultPrefix  = "edgeguard"
	DefaultTimeout = 5 * time.Second
	DefaultDownFor = 30 * time.Second
)

// Config configures a Backend. Secrets (the token, the AppRole secret id)
// are read by the caller from files.
type Config struct {
	// Addr is Vault's URL (VAULT_ADDR), e.g. https://vault:8200.
	Addr string
	// Mount is the KV v2 mount (VAULT_MOUNT, default secret).
	Mount string
	// Prefix is the path under the mount (VAULT_PREFIX, default edgeguard).
	Prefix string
	// Token returns the token (VAULT_TOKEN_FILE, read again after a 403:
	// an agent may have renewed it). Set Token or RoleID/SecretID.
	Token func() ([]byte, error)
	// RoleID and SecretID log in with AppRole (auth/approle/login).
	RoleID, SecretID []byte
	// Timeout bounds one request (VAULT_TIMEOUT, default 5s).
	Timeout time.Duration
	// DownFor is how long an unreachable Vault is not asked again
	// (default 30s): start-up does not wait Timeout for every secret.
	DownFor time.Duration
	// HTTPClient replaces the default client (tests).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Backend reads secrets from Vault. Safe for concurrent use.
type Backend struct {
	cfg    Config
	client *api.Client

	mu        sync.Mutex
	token     []byte
	downUntil time.Time
}

var _ secrets.Backend = (*Backend)(nil)

// New checks cfg and builds the client. It does no network I/O: the
// first Lookup logs in.
func New(cfg Config) (*Backend, error) {
	if cfg.Mount == "" {
		cfg.Mount = DefaultMount
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	cfg.Mount, cfg.Prefix = strings.Trim(cfg.Mount, "/"), strings.Trim(cfg.Prefix, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DownFor <= 0 {
		cfg.DownFor = DefaultDownFor
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u, err := url.Parse(cfg.Addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("VAULT_ADDR: not an http(s) URL without credentials")
	}
	if !validPath(cfg.Mount) || !validPath(cfg.Prefix) {
		return nil, errors.New("VAULT_MOUNT/VAULT_PREFIX: a path of [A-Za-z0-9._/-] without '..'")
	}
	if (cfg.Token == nil) == (len(cfg.RoleID) == 0 && len(cfg.SecretID) == 0) {
		return nil, errors.New("VAULT_TOKEN_FILE: set it, or VAULT_ROLE_ID_FILE and VAULT_SECRET_ID_FILE (one method)")
	}
	if cfg.Token == nil && (len(cfg.RoleID) == 0 || len(cfg.SecretID) == 0) {
		return nil, errors.New("VAULT_ROLE_ID_FILE: AppRole needs VAULT_ROLE_ID_FILE and VAULT_SECRET_ID_FILE")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 nil, // the token never goes through a proxy
			DialContext:           (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	c, err := api.NewClient(&api.Config{Address: cfg.Addr, HttpClient: hc, Timeout: cfg.Timeout, MaxRetries: 0})
	if err != nil {
		return nil, fmt.Errorf("VAULT_ADDR: %w", err)
	}
	c.ClearToken() // never a VAULT_TOKEN from the environment: only the file or AppRole
	return &Backend{cfg: cfg, client: c}, nil
}

func validPath(p string) bool {
	if p == "" || strings.Contains(p, "..") {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._/-", c) >= 0) {
			return false
		}
	}
	return true
}

// Name is "vault".
func (*Backend) Name() string { return "vault" }

// Where names the KV v2 path.
func (b *Backend) Where(name string) string { return "not in vault at " + b.path(name) }

func (b *Backend) path(name string) string { return b.cfg.Mount + "/data/" + b.cfg.Prefix + "/" + name }

// Lookup reads the field "value" of <mount>/<prefix>/<name>.
func (b *Backend) Lookup(ctx context.Context, name string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock() // one request at a time: start-up and refreshes only
	if b.cfg.Now().Before(b.downUntil) {
		return nil, fmt.Errorf("vault: %w (not retried yet)", secrets.ErrUnavailable)
	}
	for attempt := 0; ; attempt++ {
		if b.token == nil {
			if err := b.login(ctx); err != nil {
				return nil, b.classify(name, err, "login")
			}
		}
		v, err := b.read(ctx, name)
		var re *api.ResponseError
		if attempt == 0 && errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
			b.token = nil // expired or renewed elsewhere: log in again once
			continue
		}
		if err != nil {
			return nil, b.classify(name, err, "read")
		}
		return v, nil
	}
}

// login sets b.token from the token file or an AppRole login.
func (b *Backend) login(ctx context.Context) error {
	if b.cfg.Token != nil {
		t, err := b.cfg.Token()
		if err != nil {
			return errLogin{"VAULT_TOKEN_FILE: cannot read the token"}
		}
		if t = bytes.TrimSpace(t); len(t) == 0 {
			return errLogin{"VAULT_TOKEN_FILE: empty"}
		}
		b.token = t
		b.client.SetToken(string(t))
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	b.client.ClearToken()
	s, err := b.client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": string(b.cfg.RoleID), "secret_id": string(b.cfg.SecretID),
	})
	if err != nil {
		return err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return errLogin{"VAULT_ROLE_ID_FILE: the AppRole login returned no token"}
	}
	b.token = []byte(s.Auth.ClientToken)
	b.client.SetToken(s.Auth.ClientToken)
	return nil
}

type errLogin struct{ msg string }

func (e errLogin) Error() string { return e.msg }

func (b *Backend) read(ctx context.Context, name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	s, err := b.client.Logical().ReadWithContext(ctx, b.path(name))
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("%s: %w", name, secrets.ErrNotFound)
	}
	data, _ := s.Data["data"].(map[string]any)
	if data == nil { // a deleted or destroyed latest version
		return nil, fmt.Errorf("%s: %w", name, secrets.ErrNotFound)
	}
	v, ok := data[Field].(string)
	if !ok {
		return nil, badField{name: name, path: b.path(name)}
	}
	return []byte(v), nil
}

type badField struct{ name, path string }

func (e badField) Error() string {
	return fmt.Sprintf("%s: vault secret %s has no string field %q", e.name, e.path, Field)
}

// classify maps an error to the contract of secrets.Backend. Vault's own
// messages are not passed on (they may echo request data); status codes are.
func (b *Backend) classify(name string, err error, op string) error {
	if errors.Is(err, secrets.ErrNotFound) {
		return err
	}
	var bf badField
	var le errLogin
	var re *api.ResponseError
	switch {
	case errors.As(err, &bf):
		return err
	case errors.As(err, &le):
		return fmt.Errorf("%s: %s", name, le.msg)
	case errors.As(err, &re):
		if re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests {
			b.downUntil = b.cfg.Now().Add(b.cfg.DownFor)
			return fmt.Errorf("vault: %w (%s answered %d)", secrets.ErrUnavailable, op, re.StatusCode)
		}
		if op == "login" {
			return fmt.Errorf("%s: vault AppRole login refused (%d); check VAULT_ROLE_ID_FILE and VAULT_SECRET_ID_FILE", name, re.StatusCode)
		}
		if re.StatusCode == http.StatusForbidden {
			return fmt.Errorf("%s: vault denied reading %s (403); check the token's policy", name, b.path(name))
		}
		return fmt.Errorf("%s: vault answered %d reading %s", name, re.StatusCode, b.path(name))
	}
	// no HTTP answer: unreachable, timed out, TLS failure, unparseable body
	b.downUntil = b.cfg.Now().Add(b.cfg.DownFor)
	return fmt.Errorf("vault: %w (%s: %s)", secrets.ErrUnavailable, op, transportReason(err))
}

// transportReason is a short reason without URLs or bodies.
func transportReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + " failed"
	}
	return "no valid answer"
}

// FromEnv builds the Backend of SECRETS_SOURCES=…vault… from VAULT_ADDR
// (required), VAULT_MOUNT, VAULT_PREFIX, VAULT_TIMEOUT and either
// VAULT_TOKEN_FILE or VAULT_ROLE_ID_FILE + VAULT_SECRET_ID_FILE (files only:
// an inline VAULT_TOKEN is never used). It is envconf.Loader's factory for
// "vault": a service that reads Vault sets Loader.Backends["vault"] to it.
func FromEnv(l *envconf.Loader) (secrets.Backend, error) {
	cfg := Config{
		Addr:   l.Str("VAULT_ADDR", ""),
		Mount:  l.Str("VAULT_MOUNT", DefaultMount),
		Prefix: l.Str("VAULT_PREFIX", DefaultPrefix),
	}
	if cfg.Addr == "" {
		return nil, errors.New("VAULT_ADDR: required when SECRETS_SOURCES names vault")
	}
	var err error
	if cfg.Timeout, err = l.Duration("VAULT_TIMEOUT", DefaultTimeout, 100*time.Millisecond, time.Minute); err != nil {
		return nil, err
	}
	readFile := func(name string) ([]byte, error) {
		path := l.Str(name, "")
		if path == "" {
			return nil, nil
		}
		b, err := l.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read %s", name, path)
		}
		if b = bytes.TrimSpace(b); len(b) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", name, path)
		}
		if l.Strict && envconf.IsPlaceholder(b) {
			return nil, fmt.Errorf("%s: a placeholder or default value", name)
		}
		return b, nil
	}
	if l.Str("VAULT_TOKEN_FILE", "") != "" {
		if _, err := readFile("VAULT_TOKEN_FILE"); err != nil {
			return nil, err
		}
		cfg.Token = func() ([]byte, error) { return readFile("VAULT_TOKEN_FILE") }
	}
	if cfg.RoleID, err = readFile("VAULT_ROLE_ID_FILE"); err != nil {
		return nil, err
	}
	if cfg.SecretID, err = readFile("VAULT_SECRET_ID_FILE"); err != nil {
		return nil, err
	}
	return New(cfg)
}

// Sources is what a service that reads Vault puts in envconf.Loader.Backends.
var Sources = map[string]func(*envconf.Loader) (secrets.Backend, error){"vault": FromEnv}

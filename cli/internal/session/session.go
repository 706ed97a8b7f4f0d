// Package session is edgectl's logged-in session with one server: it turns
// the tokens of a device login into verified, stored credentials, hands out
// a fresh access token (refreshing it when it is about to expire), ends the
// session, and resolves which credential an API call uses.
//
// Every access token is verified with pkg/jwtauth — the edge's own verifier
// — against the realm's JWKS before it is stored (issuer = the discovered
// issuer, audience jan-api, azp = the client), and a DPoP-bound one must be
// bound to the session's own key (DPoP, RFC 9449: the key is generated at
// login and stored, encrypted, with the tokens). It is not the OAuth client
// (package deviceflow) nor the storage (package credstore).
package session

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/cli/internal/deviceflow"
	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// Defaults and environment variables.
const (
	DefaultRealm  = "jan"
	DefaultClient = "jan-cli"
	// AgentClient is the realm's client that requires DPoP-bound tokens:
	// login uses DPoP with it unless told otherwise.
	AgentClient = "jan-agent"
	// Audience is the audience every access token must carry (the edge's).
	Audience = "jan-api"
	// MinValidity: a stored access token expiring sooner is refreshed
	// before use.
	MinValidity = 30 * time.Second
	// VerifyTimeout bounds the wait for the realm's keys.
	VerifyTimeout = 10 * time.Second

	EnvServer  = "EDGEGUARD_SERVER"
	EnvAPIKey  = "EDGEGUARD_API_KEY"
	EnvKeyring = "EDGEGUARD_KEYRING"
)

// Sentinel errors.
var (
	// ErrNoServer: no --server, no EDGEGUARD_SERVER and no earlier login.
	ErrNoServer = errors.New("no server: give --server URL (or set EDGEGUARD_SERVER, or log in once with --server)")
	// ErrNotLoggedIn: no stored credentials for the server.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrSessionEnded: the refresh token expired or was revoked.
	ErrSessionEnded = errors.New("the session has ended (refresh token expired or revoked)")
	// ErrTokenRejected: a token from the realm failed verification.
	ErrTokenRejected = errors.New("the access token was rejected")
	// ErrAPIKeyNotAccepted: an API key was given for a target that needs
	// the login (JWT).
	ErrAPIKeyNotAccepted = errors.New("an API key is not accepted here: this needs your login (edgectl login); a leaked key must never manage keys")
	// ErrBadAPIKey: the given API key is not a well-formed sk_ key.
	ErrBadAPIKey = errors.New("the API key is not a well-formed sk_ key")
	// ErrBinding: a token is not bound to the session's DPoP key (or bound
	// to a key the session does not hold).
	ErrBinding = errors.New("the token's DPoP binding does not match the session's key")
)

// Env is what sessions run against.
type Env struct {
	Store     *credstore.Store
	HTTP      *http.Client // nil: deviceflow.NewHTTPClient(15 s)
	Now       func() time.Time
	Sleep     func(ctx context.Context, d time.Duration) error
	Getenv    func(string) string
	UserAgent string
	// AllowHTTP allows plain http to non-loopback hosts (--insecure-http).
	AllowHTTP bool
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Lookup reads an environment variable (Env.Getenv, else os.Getenv).
func (e *Env) Lookup(k string) string { return e.getenv(k) }

func (e *Env) getenv(k string) string {
	if e.Getenv != nil {
		return e.Getenv(k)
	}
	return os.Getenv(k)
}

// HTTPClient is the client for every request of the session.
func (e *Env) HTTPClient() *http.Client {
	if e.HTTP == nil {
		e.HTTP = deviceflow.NewHTTPClient(15 * time.Second)
	}
	return e.HTTP
}

// CanonicalServer normalises a server URL — the credentials' key: scheme and
// host lowercased, default port dropped, no trailing slash, no query,
// fragment or credentials; plain http only for loopback unless allowHTTP.
func CanonicalServer(raw string, allowHTTP bool) (string, error) {
	u, err := deviceflow.CheckURL(strings.TrimSpace(raw), allowHTTP)
	if err != nil {
		return "", fmt.Errorf("--server: %w", err)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return "", fmt.Errorf("--server: %s has a query", u.Redacted())
	}
	c := url.URL{Scheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Host), Path: strings.TrimRight(u.Path, "/")}
	if p := c.Port(); (c.Scheme == "https" && p == "443") || (c.Scheme == "http" && p == "80") {
		c.Host = strings.TrimSuffix(c.Host, ":"+p)
	}
	return c.String(), nil
}

// Server resolves the server: flag > EDGEGUARD_SERVER > the last login.
func (e *Env) Server(flag string) (string, error) {
	raw := flag
	if raw == "" {
		raw = e.getenv(EnvServer)
	}
	if raw == "" {
		d, err := e.Store.DefaultServer()
		if err != nil {
			return "", err
		}
		if d == "" {
			return "", ErrNoServer
		}
		raw = d
	}
	return CanonicalServer(raw, e.AllowHTTP)
}

// Client returns the OAuth client of stored credentials (with their DPoP
// key, when they have one that loads: see DPoPKeyOf).
func (e *Env) Client(c *credstore.Credentials) *deviceflow.Client {
	k, _ := DPoPKeyOf(c)
	return &deviceflow.Client{
		HTTP: e.HTTPClient(), ClientID: c.ClientID, UserAgent: e.UserAgent, Now: e.Now, Sleep: e.Sleep,
		Provider: deviceflow.Provider{
			Issuer: c.Issuer, TokenEndpoint: c.TokenEndpoint,
			RevocationEndpoint: c.RevocationEndpoint, JWKSURI: c.JWKSURI,
		},
		DPoP: k,
	}
}

// NewDPoPKey generates a session's DPoP key: ECDSA P-256 (proofs ES256),
// and its stored form (PKCS#8 DER, base64: a secret).
func NewDPoPKey() (*dpop.Key, credstore.Secret, error) {
	k, priv, err := dpop.GenerateKey()
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("dpop key: %w", err)
	}
	return k, credstore.Secret(base64.StdEncoding.EncodeToString(der)), nil
}

// DPoPKeyOf loads the credentials' DPoP key (nil, nil for a bearer
// session).
func DPoPKeyOf(c *credstore.Credentials) (*dpop.Key, error) {
	if c.DPoPKey == "" {
		return nil, nil
	}
	der, err := base64.StdEncoding.DecodeString(string(c.DPoPKey))
	if err != nil {
		return nil, errors.New("the stored DPoP key does not decode")
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("the stored DPoP key does not parse")
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("the stored DPoP key is not an ECDSA key")
	}
	return dpop.NewKey(ec)
}

// CheckBinding checks a verified token's binding against the session's
// DPoP key: bound to exactly that key when there is one, unbound otherwise.
func CheckBinding(id *identity.Identity, key *dpop.Key) error {
	switch {
	case key == nil && id.Cnf != nil:
		return fmt.Errorf("%w: the token is DPoP-bound, but no proof was sent", ErrBinding)
	case key != nil && id.Cnf == nil:
		return fmt.Errorf("%w: the server did not bind the token to the DPoP key", ErrBinding)
	case key != nil && id.Cnf.JKT != key.Thumbprint():
		return fmt.Errorf("%w: the token is bound to another key", ErrBinding)
	}
	return nil
}

// Verify checks an access token as the edge would for the session's client:
// pkg/jwtauth with the issuer, the JWKS, audience jan-api and azp clientID.
// It waits up to VerifyTimeout for the keys.
func (e *Env) Verify(ctx context.Context, issuer, jwksURI, clientID, token string) (*identity.Identity, error) {
	v, err := jwtauth.New(jwtauth.Config{
		Issuers:            []jwtauth.Issuer{{Issuer: issuer, JWKSURL: jwksURI}},
		Audiences:          []string{Audience},
		AllowedAZP:         []string{clientID},
		MinRefreshInterval: time.Second,
		CacheEntries:       -1,
		HTTPClient:         e.HTTPClient(),
		Now:                e.Now,
		Logger:             zerolog.Nop(),
	})
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(ctx, VerifyTimeout)
	defer cancel()
	id, err := WaitVerify(ctx, v, token)
	if err != nil {
		r := jwtauth.ReasonOf(err)
		if r == jwtauth.ReasonIdPUnavailable {
			return nil, fmt.Errorf("%w: the realm's keys (%s) could not be fetched", ErrTokenRejected, jwksURI)
		}
		if r != "" {
			return nil, fmt.Errorf("%w: %s", ErrTokenRejected, r)
		}
		return nil, fmt.Errorf("%w: %v", ErrTokenRejected, err)
	}
	return id, nil
}

// WaitVerify checks tok at once — a token rejected on its claims needs no
// keys — and, if the keys are not there yet, waits for them until ctx ends
// and checks again (jwtauth fetches them in the background).
func WaitVerify(ctx context.Context, v *jwtauth.Verifier, tok string) (*identity.Identity, error) {
	id, err := v.Verify(ctx, tok)
	if jwtauth.ReasonOf(err) != jwtauth.ReasonIdPUnavailable {
		return id, err
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !v.Ready() {
		select {
		case <-ctx.Done():
			return nil, jwtauth.ReasonIdPUnavailable
		case <-t.C:
		}
	}
	return v.Verify(ctx, tok)
}

// Credentials builds the stored form of a verified token.
func (e *Env) Credentials(server, realm, clientID string, p deviceflow.Provider, t *deviceflow.Token, id *identity.Identity) *credstore.Credentials {
	now := e.now()
	c := &credstore.Credentials{
		Server: server, Realm: realm, ClientID: clientID,
		Issuer: p.Issuer, TokenEndpoint: p.TokenEndpoint, RevocationEndpoint: p.RevocationEndpoint, JWKSURI: p.JWKSURI,
		AccessToken: credstore.Secret(t.AccessToken), RefreshToken: credstore.Secret(t.RefreshToken),
		Identity: *id, SavedAt: now.UTC(),
	}
	c.ExpiresAt = id.ExpiresAt.UTC()
	if c.ExpiresAt.IsZero() && t.ExpiresIn > 0 {
		c.ExpiresAt = now.Add(t.ExpiresIn).UTC()
	}
	if t.RefreshExpiresIn > 0 {
		c.RefreshExpiresAt = now.Add(t.RefreshExpiresIn).UTC()
	}
	return c
}

// Load returns the stored credentials of server (ErrNotLoggedIn wrapped
// when there are none).
func (e *Env) Load(server string) (*credstore.Credentials, error) {
	c, err := e.Store.Load(server)
	if errors.Is(err, credstore.ErrNotFound) {
		return nil, fmt.Errorf("%w to %s: run edgectl login --server %s", ErrNotLoggedIn, server, server)
	}
	return c, err
}

// Fresh returns credentials whose access token is valid for at least
// MinValidity, refreshing (and re-verifying, and storing) them when needed.
// Concurrent edgectl processes refresh one at a time (credstore.Lock).
func (e *Env) Fresh(ctx context.Context, server string) (*credstore.Credentials, bool, error) {
	return e.fresh(ctx, server, false)
}

// Refresh is Fresh that refreshes in any case (edgectl token --refresh).
func (e *Env) Refresh(ctx context.Context, server string) (*credstore.Credentials, error) {
	c, _, err := e.fresh(ctx, server, true)
	return c, err
}

func (e *Env) fresh(ctx context.Context, server string, force bool) (*credstore.Credentials, bool, error) {
	c, err := e.Load(server)
	if err != nil {
		return nil, false, err
	}
	if !force && c.ExpiresAt.Sub(e.now()) > MinValidity {
		return c, false, nil
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := e.Store.Lock(lctx, server)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	before := c.AccessToken
	if c, err = e.Load(server); err != nil { // another process may have refreshed
		return nil, false, err
	}
	if (!force || c.AccessToken != before) && c.ExpiresAt.Sub(e.now()) > MinValidity {
		return c, false, nil
	}
	key, err := DPoPKeyOf(c)
	if err != nil {
		return nil, false, fmt.Errorf("%w: run edgectl login --server %s", err, server)
	}
	if c.RefreshToken == "" || (!c.RefreshExpiresAt.IsZero() && !e.now().Before(c.RefreshExpiresAt)) {
		return nil, false, fmt.Errorf("%w: run edgectl login --server %s", ErrSessionEnded, server)
	}
	cl := e.Client(c)
	t, err := cl.Refresh(ctx, string(c.RefreshToken))
	if err != nil {
		if code := deviceflow.CodeOf(err); code == "invalid_grant" || code == "invalid_token" {
			return nil, false, fmt.Errorf("%w: run edgectl login --server %s", ErrSessionEnded, server)
		}
		return nil, false, err
	}
	id, err := e.Verify(ctx, c.Issuer, c.JWKSURI, c.ClientID, t.AccessToken)
	if err != nil {
		return nil, false, err
	}
	if err := CheckBinding(id, key); err != nil {
		return nil, false, err
	}
	if t.RefreshToken == "" { // the server kept the old one
		t.RefreshToken = string(c.RefreshToken)
	}
	p := cl.Provider
	nc := e.Credentials(server, c.Realm, c.ClientID, p, t, id)
	nc.DPoPKey = c.DPoPKey
	if t.RefreshExpiresIn == 0 {
		nc.RefreshExpiresAt = c.RefreshExpiresAt
	}
	if err := e.Store.Save(nc); err != nil {
		return nil, false, fmt.Errorf("storing the refreshed credentials: %w", err)
	}
	return nc, true, nil
}

// LogoutResult says what Logout did.
type LogoutResult struct {
	LoggedIn  bool  // there were credentials (or a credential file)
	Revoked   bool  // Keycloak revoked the refresh token
	RevokeErr error // why it was not revoked (nil when Revoked or nothing to revoke)
}

// Logout revokes the session's refresh token at the realm's revocation
// endpoint, then deletes the stored credentials and their key, whatever the
// revocation's outcome (the failure is reported).
func (e *Env) Logout(ctx context.Context, server string) (LogoutResult, error) {
	var r LogoutResult
	c, err := e.Store.Load(server)
	switch {
	case errors.Is(err, credstore.ErrNotFound):
	case err != nil:
		r.LoggedIn = true
		r.RevokeErr = fmt.Errorf("the stored credentials do not load, nothing revoked: %w", err)
	default:
		r.LoggedIn = true
		tok, hint := string(c.RefreshToken), "refresh_token"
		if tok == "" {
			tok, hint = string(c.AccessToken), "access_token"
		}
		if err := e.Client(c).Revoke(ctx, tok, hint); err != nil {
			r.RevokeErr = err
		} else {
			r.Revoked = true
		}
	}
	if _, statErr := os.Stat(e.Store.Path(server)); statErr == nil {
		r.LoggedIn = true
	}
	if err := e.Store.Delete(server); err != nil {
		return r, fmt.Errorf("deleting the stored credentials: %w", err)
	}
	if err := e.Store.ClearDefaultServer(server); err != nil {
		return r, err
	}
	return r, nil
}

// Kind is the kind of credential an API call sends.
type Kind string

// Kinds.
const (
	KindJWT    Kind = "jwt"
	KindAPIKey Kind = "apikey"
)

// Credential is the resolved credential of an API call. Value is secret.
type Credential struct {
	Kind   Kind
	Source string // "flag", "env" (EDGEGUARD_API_KEY) or "stored"
	Value  credstore.Secret
	// DPoP is the session's key when Value is a DPoP-bound token: requests
	// then carry "Authorization: DPoP" and a proof (Authorize).
	DPoP *dpop.Key
	// KID is the API key's public id (API keys only).
	KID string
	// Ignored names a credential that was present but not used for this
	// target (e.g. EDGEGUARD_API_KEY for a JWT-only target), "" if none.
	Ignored string
}

// Accepts says which credentials a target accepts.
type Accepts struct{ JWT, APIKey bool }

// Resolve picks the credential of an API call to server: --api-key flag >
// EDGEGUARD_API_KEY > the stored login (a fresh access token). An API key
// is used only where the target accepts one: given as a flag to a JWT-only
// target it is an error (ErrAPIKeyNotAccepted); from the environment it is
// skipped and reported in Ignored.
func (e *Env) Resolve(ctx context.Context, server, flagKey string, a Accepts) (Credential, error) {
	if flagKey != "" {
		if !a.APIKey {
			return Credential{}, ErrAPIKeyNotAccepted
		}
		return ResolveAPIKey(flagKey, "flag")
	}
	var ignored string
	if env := e.getenv(EnvAPIKey); env != "" {
		if a.APIKey {
			return ResolveAPIKey(env, "env")
		}
		ignored = EnvAPIKey + " (this target needs the login)"
	}
	if !a.JWT {
		return Credential{}, errors.New("no API key given (--api-key or " + EnvAPIKey + ")")
	}
	c, _, err := e.Fresh(ctx, server)
	if err != nil {
		return Credential{}, err
	}
	key, err := DPoPKeyOf(c)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: run edgectl login --server %s", err, server)
	}
	return Credential{Kind: KindJWT, Source: "stored", Value: c.AccessToken, DPoP: key, Ignored: ignored}, nil
}

// Authorize sets the request's credential: "Authorization: Bearer" (API
// keys, bearer tokens), or for a DPoP-bound token "Authorization: DPoP"
// and a DPoP header with a fresh proof for the request's method and URL
// (nonce: the server's last DPoP-Nonce, "" if none; now: the proof's iat).
func (c Credential) Authorize(req *http.Request, nonce string, now time.Time) error {
	if c.DPoP == nil {
		req.Header.Set("Authorization", "Bearer "+string(c.Value))
		return nil
	}
	p, err := c.DPoP.Proof(req.Method, req.URL.String(), dpop.ProofOptions{AccessToken: string(c.Value), Nonce: nonce, Now: now})
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", dpop.Scheme+" "+string(c.Value))
	req.Header.Set(dpop.HeaderDPoP, p)
	return nil
}

// NonceRetry reports whether an answer asks for a DPoP proof with the
// server's nonce (RFC 9449 §9: 401, WWW-Authenticate DPoP
// error="use_dpop_nonce", DPoP-Nonce), and the nonce.
func NonceRetry(status int, h http.Header) (string, bool) {
	n := h.Get(dpop.HeaderNonce)
	if status != http.StatusUnauthorized || n == "" || len(n) > 256 {
		return "", false
	}
	for _, v := range h.Values("WWW-Authenticate") {
		if strings.Contains(v, `error="`+dpop.ErrorUseNonce+`"`) {
			return n, true
		}
	}
	return "", false
}

// ResolveAPIKey checks an API key's form (pkg/apikey: prefix, length,
// checksum) without any I/O and returns it as a Credential from source.
func ResolveAPIKey(raw, source string) (Credential, error) {
	k, err := apikey.Parse(strings.TrimSpace(raw))
	if err != nil {
		return Credential{}, fmt.Errorf("%w (from %s)", ErrBadAPIKey, source)
	}
	return Credential{Kind: KindAPIKey, Source: source, Value: credstore.Secret(k.Secret()), KID: k.KID()}, nil
}

// Options are what the credential commands get from edgectl's entry point.
type Options struct {
	// Open builds the session environment (the store, HTTP, clock).
	Open func() (*Env, error)
	// IsTerminal says whether w is a terminal (spinners, tables).
	IsTerminal func(w io.Writer) bool
}

// Terminal reports whether w is a terminal.
func (o Options) Terminal(w io.Writer) bool { return o.IsTerminal != nil && o.IsTerminal(w) }

// Sanitize makes server-provided text safe to print on a terminal: control
// and format characters become '?', and it is cut at n runes.
func Sanitize(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range s {
		if count == n {
			b.WriteString("…")
			break
		}
		count++
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

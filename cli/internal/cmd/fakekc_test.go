package cmd

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// fakeClock is the time of an in-process edgectl run.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// fakeKeycloak is an httptest stand-in for a Keycloak realm as edgectl
// sees it: discovery, the device endpoint, the token endpoint (device and
// refresh grants) and the revocation endpoint. Its tokens are signed by a
// jwttest realm, whose JWKS the discovery document points at.
type fakeKeycloak struct {
	t     testing.TB
	srv   *httptest.Server
	realm *jwttest.IdP
	clock *fakeClock

	mu sync.Mutex
	// device is the script of the device grant: OAuth error codes, then
	// "" for success; the last entry repeats.
	device []string
	// accessOver overrides claims of the access tokens minted.
	accessOver map[string]any
	// refreshError, when set, is the OAuth error of every refresh.
	refreshError string
	revokeStatus int
	sub          string
	refreshToken string // the one currently valid (rotation)
	issued       []string
	refreshes    int
	revoked      []string
	polls        int

	// DPoP (RFC 9449): a token request with a proof gets tokens bound to
	// its key (token_type DPoP, cnf.jkt), whose refresh needs a proof of
	// the same key; requireDPoP lists the clients that must send one
	// (Keycloak's dpop.bound.access.tokens).
	requireDPoP map[string]bool
	dpop        *dpop.Verifier
	boundTo     string   // the jkt the current refresh token is bound to
	proofs      []string // every proof received (secrets for the sweep: JWS-shaped)
	revokeProof bool     // the last revocation request carried a proof
}

func newFakeKeycloak(t testing.TB, clock *fakeClock) *fakeKeycloak {
	f := &fakeKeycloak{t: t, realm: jwttest.New(t), clock: clock, device: []string{"authorization_pending", ""},
		sub: "0b9d-user-1", revokeStatus: http.StatusOK, requireDPoP: map[string]bool{"jan-agent": true}}
	v, err := dpop.New(dpop.Config{Replay: &dpop.ReplayGuard{Local: dpop.NewLocalStore(1000, clock.Now)}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.dpop = v
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the --server of the fake.
func (f *fakeKeycloak) URL() string { return f.srv.URL }

// proofKey checks the request's DPoP proof for the endpoint: "" and no
// error without one, else the key's thumbprint.
func (f *fakeKeycloak) proofKey(r *http.Request) (string, error) {
	p := r.Header.Get("DPoP")
	if p == "" {
		return "", nil
	}
	f.proofs = append(f.proofs, p)
	h, err := enc.DecodeString(strings.SplitN(p, ".", 2)[0])
	if err != nil {
		return "", err
	}
	var hdr struct {
		JWK json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return "", err
	}
	k, err := jwk.ParseKey(hdr.JWK)
	if err != nil {
		return "", err
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	jkt := enc.EncodeToString(tp)
	return jkt, f.dpop.Verify(r.Context(), p, dpop.Request{Method: r.Method, URL: f.srv.URL + r.URL.Path, JKT: jkt})
}

func (f *fakeKeycloak) mint(client, jkt string) (access, refresh string) {
	over := map[string]any{
		"exp": f.clock.Now().Add(5 * time.Minute).Unix(), "iat": f.clock.Now().Unix(),
		"preferred_username": "alice", "email": "alice@example.com", "azp": client,
	}
	if jkt != "" {
		over["cnf"], over["typ"] = map[string]any{"jkt": jkt}, "DPoP"
	}
	for k, v := range f.accessOver {
		over[k] = v
	}
	access = f.realm.Token(f.t, f.sub, over)
	refresh = fmt.Sprintf("rt-%d-%s", len(f.issued), strings.Repeat("r", 40))
	f.refreshToken, f.boundTo = refresh, jkt
	f.issued = append(f.issued, access, refresh)
	return access, refresh
}

func (f *fakeKeycloak) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	writeJSON := func(status int, v any) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	oauthErr := func(code string) { writeJSON(http.StatusBadRequest, map[string]string{"error": code}) }
	tokens := func(jkt string) {
		access, refresh := f.mint(r.PostForm.Get("client_id"), jkt)
		typ := "Bearer"
		if jkt != "" {
			typ = "DPoP"
		}
		writeJSON(http.StatusOK, map[string]any{"access_token": access, "refresh_token": refresh, "token_type": typ,
			"expires_in": 300, "refresh_expires_in": 1800, "scope": "profile email"})
	}
	switch r.URL.Path {
	case "/realms/jan/.well-known/openid-configuration":
		writeJSON(http.StatusOK, map[string]string{
			"issuer": f.realm.Issuer, "jwks_uri": f.realm.JWKSURL(),
			"device_authorization_endpoint": f.srv.URL + "/realms/jan/protocol/openid-connect/auth/device",
			"token_endpoint":                f.srv.URL + "/realms/jan/protocol/openid-connect/token",
			"revocation_endpoint":           f.srv.URL + "/realms/jan/protocol/openid-connect/revoke",
		})
	case "/realms/jan/protocol/openid-connect/auth/device":
		if id := r.PostForm.Get("client_id"); id != "jan-cli" && id != "jan-agent" {
			writeJSON(http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		writeJSON(http.StatusOK, map[string]any{"device_code": "device-code-secret-xyz", "user_code": "WDJB-MJHT",
			"verification_uri": f.realm.Issuer + "/device", "verification_uri_complete": f.realm.Issuer + "/device?user_code=WDJB-MJHT",
			"expires_in": 600, "interval": 5})
	case "/realms/jan/protocol/openid-connect/token":
		jkt, err := f.proofKey(r)
		if err != nil {
			writeJSON(http.StatusBadRequest, map[string]string{"error": "invalid_dpop_proof"})
			return
		}
		if jkt == "" && f.requireDPoP[r.PostForm.Get("client_id")] {
			// Keycloak 26's answer to a client with dpop.bound.access.tokens
			writeJSON(http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "DPoP proof is missing"})
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "urn:ietf:params:oauth:grant-type:device_code":
			f.polls++
			code := f.device[0]
			if len(f.device) > 1 {
				f.device = f.device[1:]
			}
			if code != "" {
				oauthErr(code)
				return
			}
			tokens(jkt)
		case "refresh_token":
			f.refreshes++
			if f.refreshError != "" {
				oauthErr(f.refreshError)
				return
			}
			if r.PostForm.Get("refresh_token") != f.refreshToken || f.refreshToken == "" {
				oauthErr("invalid_grant")
				return
			}
			if f.boundTo != jkt { // a bound refresh token needs a proof of its key
				oauthErr("invalid_grant")
				return
			}
			tokens(jkt)
		default:
			oauthErr("unsupported_grant_type")
		}
	case "/realms/jan/protocol/openid-connect/revoke":
		f.revokeProof = r.Header.Get("DPoP") != ""
		f.revoked = append(f.revoked, r.PostForm.Get("token"))
		if r.PostForm.Get("token") == f.refreshToken {
			f.refreshToken = ""
		}
		w.WriteHeader(f.revokeStatus)
	default:
		http.NotFound(w, r)
	}
}

// secrets are every token the fake issued, and the device code.
func (f *fakeKeycloak) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(append([]string{"device-code-secret-xyz"}, f.issued...), f.proofs...)
}

// user is one person's edgectl: a config directory, an environment, a
// clock, an in-memory keyring or none.
type user struct {
	t     testing.TB
	dir   string
	vars  map[string]string
	clock *fakeClock
	ring  credstore.Keyring
	term  bool
	stdin string
}

func newUser(t testing.TB, clock *fakeClock) *user {
	return &user{t: t, dir: filepath.Join(t.TempDir(), "edgeguard"), vars: map[string]string{"EDGEGUARD_KEYRING": "file"}, clock: clock}
}

func (u *user) run(args ...string) result {
	u.t.Helper()
	var out, errb bytes.Buffer
	code := u.env(&out, &errb).Run(context.Background(), args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// env is the user's edgectl writing to out and errb.
func (u *user) env(out, errb io.Writer) Env {
	return Env{
		Stdin: strings.NewReader(u.stdin), Stdout: out, Stderr: errb, Now: u.clock.Now,
		ConfigDir: u.dir, Keyring: u.ring, Getenv: func(k string) string { return u.vars[k] },
		Sleep: func(ctx context.Context, d time.Duration) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			u.clock.Add(d)
			return nil
		},
		IsTerminal: func(io.Writer) bool { return u.term },
	}
}

func (u *user) store() *credstore.Store {
	u.t.Helper()
	s, err := credstore.New(credstore.Options{Dir: u.dir, Mode: credstore.ModeFile, Keyring: u.ring})
	if err != nil {
		u.t.Fatal(err)
	}
	return s
}

// noTokens fails if any secret (or any part of a JWT) is in r's output.
func noTokens(t testing.TB, r result, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		for _, p := range append([]string{s}, strings.Split(s, ".")...) {
			if len(p) >= 16 && strings.Contains(r.stdout+r.stderr, p) {
				t.Fatalf("output carries a secret: stdout %q stderr %q", r.stdout, r.stderr)
			}
		}
	}
}

package cmd

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/session"
	"github.com/edgeguard/edgeguard/pkg/dpop"
)

// boundLogin logs a user in with args (plus --server) and returns the
// stored session's DPoP key.
func boundLogin(t *testing.T, u *user, kc *fakeKeycloak, args ...string) *dpop.Key {
	t.Helper()
	r := u.run(append([]string{"login", "--server", kc.URL()}, args...)...)
	if r.code != 0 {
		t.Fatalf("login %v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
	}
	c, err := u.store().Load(kc.URL())
	if err != nil {
		t.Fatal(err)
	}
	k, err := session.DPoPKeyOf(c)
	if err != nil || k == nil {
		t.Fatalf("no DPoP key stored: %v", err)
	}
	if c.Identity.Cnf == nil || c.Identity.Cnf.JKT != k.Thumbprint() {
		t.Fatalf("stored identity's binding %+v, key %s", c.Identity.Cnf, k.Thumbprint())
	}
	if !strings.Contains(r.stdout, "DPoP-bound to this session's key (thumbprint "+k.Thumbprint()+")") {
		t.Errorf("login does not say the tokens are bound: %q", r.stdout)
	}
	noTokens(t, r, kc.secrets())
	return k
}

// jan-agent requires DPoP-bound tokens: edgectl proves a key of its own
// from the first poll, and the session keeps the key, encrypted.
func TestLoginWithTheAgentClientBindsTheSessionToAKey(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	k := boundLogin(t, u, kc, "--client", "jan-agent")
	if kc.polls != 2 || len(kc.proofs) != 2 {
		t.Errorf("%d polls with %d proofs, want 2 and 2 (every poll proves the key)", kc.polls, len(kc.proofs))
	}
	var w map[string]any
	who := u.run("whoami", "--json")
	if json.Unmarshal([]byte(who.stdout), &w) != nil || w["dpop_jkt"] != k.Thumbprint() || w["azp"] != nil && w["azp"] != "jan-cli" && w["azp"] != "jan-agent" {
		t.Fatalf("whoami: %s", who.stdout)
	}
	if table := u.run("whoami"); !strings.Contains(table.stdout, "tokens bound to key "+k.Thumbprint()) {
		t.Errorf("whoami table: %q", table.stdout)
	}
	// the key is in the credential file only encrypted
	c, _ := u.store().Load(kc.URL())
	raw, err := os.ReadFile(u.store().Path(kc.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), string(c.DPoPKey)) || strings.Contains(string(raw), "dpop_key") {
		t.Fatal("the DPoP key is in the credential file in clear")
	}
	noTokens(t, result{stdout: string(raw)}, kc.secrets())
	for _, r := range []result{who, u.run("doctor")} {
		noLeak(t, r, string(c.DPoPKey))
	}
}

// Without --dpop, a client whose token endpoint asks for a proof gets one
// (Keycloak: invalid_request "DPoP proof is missing"); --dpop=false never
// sends one and says why the login failed; --dpop binds jan-cli's tokens.
func TestLoginDPoPModes(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	kc.requireDPoP["jan-cli"] = true
	boundLogin(t, newUser(t, clock), kc)

	kc = newFakeKeycloak(t, clock)
	r := newUser(t, clock).run("login", "--server", kc.URL(), "--client", "jan-agent", "--dpop=false")
	if r.code != 1 || !strings.Contains(r.stderr, "requires DPoP-bound tokens") || len(kc.proofs) != 0 {
		t.Fatalf("--dpop=false with jan-agent: exit %d %q, %d proofs", r.code, r.stderr, len(kc.proofs))
	}

	kc = newFakeKeycloak(t, clock)
	boundLogin(t, newUser(t, clock), kc, "--dpop")

	// a plain jan-cli login stays a bearer session
	kc = newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	if r := u.run("login", "--server", kc.URL()); r.code != 0 || len(kc.proofs) != 0 || strings.Contains(r.stdout, "DPoP") {
		t.Fatalf("bearer login: %d, %d proofs, %q", r.code, len(kc.proofs), r.stdout)
	}
	if r := u.run("token", "proof", "--method", "GET", "--url", "https://edge.example.com/v1/models"); r.code != 1 || !strings.Contains(r.stderr, "not DPoP-bound") {
		t.Fatalf("token proof of a bearer session: %d %q", r.code, r.stderr)
	}
}

// A bound session's refresh carries a proof of the same key (the fake, as
// Keycloak, refuses anything else), and the refreshed tokens are bound to
// it; --refresh refreshes at once.
func TestBoundSessionRefreshesWithAProof(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	k := boundLogin(t, u, kc, "--client", "jan-agent")
	clock.Add(4*time.Minute + 35*time.Second)
	r := u.run("token")
	if r.code != 0 || kc.refreshes != 1 || r.stdout != kc.issued[2]+"\n" {
		t.Fatalf("refresh: exit %d %q, %d refreshes", r.code, r.stderr, kc.refreshes)
	}
	r = u.run("token", "--refresh")
	if r.code != 0 || kc.refreshes != 2 || r.stdout != kc.issued[4]+"\n" {
		t.Fatalf("token --refresh: exit %d %q, %d refreshes", r.code, r.stderr, kc.refreshes)
	}
	c, _ := u.store().Load(kc.URL())
	if c.Identity.Cnf == nil || c.Identity.Cnf.JKT != k.Thumbprint() {
		t.Fatal("the refreshed session is not bound to the key")
	}
	// the server binding a refreshed token to another key is refused
	kc.accessOver = map[string]any{"cnf": map[string]any{"jkt": strings.Repeat("A", 43)}}
	if r := u.run("token", "--refresh"); r.code != 1 || !strings.Contains(r.stderr, "bound to another key") {
		t.Fatalf("refresh bound elsewhere: %d %q", r.code, r.stderr)
	}
	kc.accessOver = nil
	// logout revokes with a proof
	if r := u.run("logout"); r.code != 0 || !kc.revokeProof {
		t.Fatalf("logout: %d %q, proof %t", r.code, r.stderr, kc.revokeProof)
	}
}

// API calls of a bound session carry "Authorization: DPoP" and a proof for
// each request, and follow the edge's nonce (use_dpop_nonce) once.
func TestKeysOfABoundSessionSendProofs(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	boundLogin(t, u, kc, "--client", "jan-agent")
	api := newFakeLLMAPI(t, func() string {
		kc.mu.Lock()
		defer kc.mu.Unlock()
		return kc.issued[len(kc.issued)-2]
	})
	v, err := dpop.New(dpop.Config{Replay: &dpop.ReplayGuard{Local: dpop.NewLocalStore(100, clock.Now)}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	api.dpop = v
	if r := u.run("keys", "list", "--api", api.srv.URL); r.code != 0 || api.proofs != 1 {
		t.Fatalf("keys list: %d %q, %d proofs accepted", r.code, r.stderr, api.proofs)
	}
	if r := u.run("keys", "create", "--name", "ci", "--api", api.srv.URL); r.code != 0 || api.proofs != 2 {
		t.Fatalf("keys create: %d %q", r.code, r.stderr)
	}
	ns, _ := dpop.NewNonces([]byte(strings.Repeat("n", 32)), time.Minute, clock.Now)
	api.nonces = ns
	api.dpop, _ = dpop.New(dpop.Config{Replay: &dpop.ReplayGuard{Local: dpop.NewLocalStore(100, clock.Now)}, Now: clock.Now, Nonces: ns})
	before := len(api.reqs)
	if r := u.run("keys", "list", "--api", api.srv.URL); r.code != 0 || len(api.reqs)-before != 2 || api.proofs != 3 {
		t.Fatalf("keys list with a nonce: %d %q, %d requests", r.code, r.stderr, len(api.reqs)-before)
	}
	for _, a := range api.auths {
		if !strings.HasPrefix(a, "DPoP ") {
			t.Fatalf("a request with %q", a[:min(len(a), 10)])
		}
	}
}

// "token proof" prints a proof the edge accepts for that method, URL and
// token — the session's, or the one given on stdin.
func TestTokenProofForScripts(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	k := boundLogin(t, u, kc, "--client", "jan-agent")
	tok := strings.TrimSpace(u.run("token").stdout)
	const url = "https://edge.example.com/v1/chat/completions"
	v, _ := dpop.New(dpop.Config{Replay: &dpop.ReplayGuard{Local: dpop.NewLocalStore(100, clock.Now)}, Now: clock.Now})
	check := func(r result, token string) {
		t.Helper()
		if r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("token proof: %d %q %q", r.code, r.stdout, r.stderr)
		}
		p := strings.TrimSpace(r.stdout)
		if err := v.Verify(context.Background(), p, dpop.Request{Method: "POST", URL: url, AccessToken: token, JKT: k.Thumbprint()}); err != nil {
			t.Fatalf("the printed proof: %v", err)
		}
		if strings.Contains(r.stdout+r.stderr, token) {
			t.Fatal("token proof printed the token")
		}
	}
	check(u.run("token", "proof", "--method", "POST", "--url", url+"?stream=true"), tok)
	u.stdin = tok + "\n"
	check(u.run("token", "proof", "--method", "POST", "--url", url, "-"), tok)
	u.stdin = ""
	for _, args := range [][]string{
		{"token", "proof", "--url", url},
		{"token", "proof", "--method", "POST"},
		{"token", "proof", "--method", "post", "--url", url},
		{"token", "proof", "--method", "POST", "--url", "/relative"},
		{"token", "proof", "--method", "POST", "--url", "https://u:p@edge.example.com/"},
	} {
		if r := u.run(args...); r.code != 2 {
			t.Errorf("%v: exit %d %q, want a usage error", args, r.code, r.stderr)
		}
	}
}

package cmd

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoginVerifiesAndStoresTheSession(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)

	r := u.run("login", "--server", kc.URL())
	if r.code != 0 {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"  " + kc.realm.Issuer + "/device?user_code=WDJB-MJHT\n", "code WDJB-MJHT", "Logged in to " + kc.URL() + " as alice (roles: user,offline_access)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("login stdout lacks %q: %q", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "\r") || strings.Contains(r.stdout, "Waiting") {
		t.Errorf("a spinner on a non-terminal stdout: %q", r.stdout)
	}
	if kc.polls != 2 {
		t.Errorf("%d polls, want 2 (pending, then the token)", kc.polls)
	}

	// whoami: from the stored, verified token; --server not needed any more.
	who := u.run("whoami", "--json")
	var w map[string]any
	if who.code != 0 || json.Unmarshal([]byte(who.stdout), &w) != nil || strings.Count(who.stdout, "\n") != 1 {
		t.Fatalf("whoami --json: exit %d %q %q", who.code, who.stdout, who.stderr)
	}
	if w["sub"] != kc.sub || w["username"] != "alice" || w["email"] != "alice@example.com" || w["azp"] != "jan-cli" ||
		w["iss"] != kc.realm.Issuer || w["server"] != kc.URL() || w["expired"] != false || w["session_expires_at"] == nil {
		t.Errorf("whoami: %s", who.stdout)
	}
	table := u.run("whoami")
	for _, want := range []string{"subject", kc.sub, "username", "alice", "roles", "user", "expires"} {
		if !strings.Contains(table.stdout, want) {
			t.Errorf("whoami table lacks %q: %q", want, table.stdout)
		}
	}

	// token: exactly the access token and a newline.
	tok := u.run("token")
	if tok.code != 0 || tok.stderr != "" || tok.stdout != kc.issued[0]+"\n" {
		t.Fatalf("token: exit %d, stderr %q, printed the access token: %t", tok.code, tok.stderr, tok.stdout == kc.issued[0]+"\n")
	}
	if kc.refreshes != 0 {
		t.Errorf("a fresh token was refreshed")
	}
	for _, r := range []result{r, who, table, u.run("doctor"), u.run("doctor", "--json")} {
		noTokens(t, r, kc.secrets())
	}

	// The credential file is encrypted and private.
	s := u.store()
	raw, err := os.ReadFile(s.Path(kc.URL()))
	if err != nil {
		t.Fatal(err)
	}
	noTokens(t, result{stdout: string(raw)}, kc.secrets())
	if fi, _ := os.Stat(s.Path(kc.URL())); fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode %v", fi.Mode().Perm())
	}
}

func TestLoginSpinnerOnlyOnATerminal(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	u.term = true
	r := u.run("login", "--server", kc.URL())
	if r.code != 0 {
		t.Fatalf("login: %d %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "Waiting for approval") || !strings.Contains(r.stdout, "\r\033[K") {
		t.Errorf("no spinner on a terminal: %q", r.stdout)
	}
}

func TestLoginFailures(t *testing.T) {
	tests := []struct {
		name    string
		device  []string
		over    map[string]any
		args    []string // extra login args
		code    int
		stderr  string
		noStore bool
	}{
		{name: "denied in the browser", device: []string{"authorization_pending", "access_denied"}, code: 1, stderr: "access_denied"},
		{name: "code expired", device: []string{"expired_token"}, code: 1, stderr: "expired_token"},
		{name: "slow_down then approved", device: []string{"slow_down", "slow_down", ""}, code: 0},
		{name: "token for another audience", over: map[string]any{"aud": "other-api"}, code: 1, stderr: "audience_mismatch"},
		{name: "token of another client", over: map[string]any{"azp": "jan-web"}, code: 1, stderr: "azp_not_allowed"},
		{name: "token of another issuer", over: map[string]any{"iss": "https://evil.example.com/realms/jan"}, code: 1, stderr: "issuer_mismatch"},
		{name: "ID token instead of an access token", over: map[string]any{"typ": "ID"}, code: 1, stderr: "token_type_invalid"},
		{name: "expired access token", over: map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}, code: 1, stderr: "token_expired"},
		{name: "unknown realm", args: []string{"--realm", "other"}, code: 1, stderr: "404"},
		{name: "unknown client", args: []string{"--client", "evil"}, code: 1, stderr: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Now()}
			kc := newFakeKeycloak(t, clock)
			if tt.device != nil {
				kc.device = tt.device
			}
			kc.accessOver = tt.over
			u := newUser(t, clock)
			r := u.run(append([]string{"login", "--server", kc.URL()}, tt.args...)...)
			noTokens(t, r, kc.secrets())
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			_, err := os.Stat(u.store().Path(kc.URL()))
			if stored := err == nil; stored != (tt.code == 0) {
				t.Errorf("credentials stored: %t, want %t", stored, tt.code == 0)
			}
		})
	}
}

func TestServerIsAUsageError(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	u := newUser(t, clock)
	for _, args := range [][]string{
		{"login"},
		{"whoami"},
		{"token"},
		{"login", "--server", "ftp://sso.example.com"},
		{"login", "--server", "http://sso.example.com"},
		{"login", "--server", "https://user:pw@sso.example.com"},
		{"login", "--server", "https://sso.example.com/?x=1"},
		{"keys", "list"},
	} {
		r := u.run(args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "Run 'edgectl") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a usage error", args, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stderr, "pw@") {
			t.Errorf("%v: the error echoes credentials: %q", args, r.stderr)
		}
	}
	// EDGEGUARD_SERVER is the default server.
	kc := newFakeKeycloak(t, clock)
	u.vars["EDGEGUARD_SERVER"] = kc.URL() + "/"
	if r := u.run("login"); r.code != 0 {
		t.Fatalf("login with EDGEGUARD_SERVER: %d %q", r.code, r.stderr)
	}
	if r := u.run("whoami", "--server", kc.URL()); r.code != 0 {
		t.Errorf("the server URL is canonical (no trailing slash): %d %q", r.code, r.stderr)
	}
}

func TestTokenRefreshesBeforeExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	if r := u.run("login", "--server", kc.URL()); r.code != 0 {
		t.Fatalf("login: %q", r.stderr)
	}
	first := kc.issued[0]

	clock.Add(4 * time.Minute) // 60 s left: no refresh
	if r := u.run("token"); r.stdout != first+"\n" || kc.refreshes != 0 {
		t.Fatalf("token with 60 s left: refreshed %d times", kc.refreshes)
	}
	clock.Add(35 * time.Second) // 25 s left: refresh
	r := u.run("token")
	if r.code != 0 || kc.refreshes != 1 || r.stdout != kc.issued[2]+"\n" || r.stderr != "" {
		t.Fatalf("token with 25 s left: exit %d, %d refreshes, new token printed %t, stderr %q", r.code, kc.refreshes, r.stdout == kc.issued[2]+"\n", r.stderr)
	}
	// The refreshed session is stored: the next call needs no refresh, and
	// whoami shows the new expiry.
	if r := u.run("token"); r.stdout != kc.issued[2]+"\n" || kc.refreshes != 1 {
		t.Fatalf("second token: %d refreshes", kc.refreshes)
	}
	var w struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	_ = json.Unmarshal([]byte(u.run("whoami", "--json").stdout), &w)
	if w.ExpiresAt.Sub(clock.Now()) < 4*time.Minute {
		t.Errorf("whoami expiry after refresh: %s", w.ExpiresAt)
	}

	// A refreshed token that fails verification is not stored.
	clock.Add(290 * time.Second)
	kc.accessOver = map[string]any{"aud": "other"}
	if r := u.run("token"); r.code != 1 || !strings.Contains(r.stderr, "audience_mismatch") || r.stdout != "" {
		t.Fatalf("refresh to a bad token: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	kc.accessOver = nil

	// The session ended at Keycloak.
	kc.refreshError = "invalid_grant"
	r = u.run("token")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "session has ended") || !strings.Contains(r.stderr, "edgectl login") {
		t.Fatalf("token after the session ended: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	noTokens(t, r, kc.secrets())
}

func TestLogoutRevokesAndDeletes(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	if r := u.run("login", "--server", kc.URL()); r.code != 0 {
		t.Fatalf("login: %q", r.stderr)
	}
	refresh := kc.refreshToken
	s := u.store()
	r := u.run("logout")
	if r.code != 0 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("logout: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	noTokens(t, r, kc.secrets())
	if !slices.Equal(kc.revoked, []string{refresh}) {
		t.Errorf("revoked %d tokens, want the refresh token", len(kc.revoked))
	}
	for _, p := range []string{s.Path(kc.URL()), s.KeyPath(kc.URL())} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after logout: %v", p, err)
		}
	}
	if r := u.run("logout", "--server", kc.URL()); r.code != 0 || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("second logout: exit %d %q", r.code, r.stderr)
	}
	if r := u.run("whoami", "--server", kc.URL()); r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("whoami after logout: exit %d %q", r.code, r.stderr)
	}

	// Revocation failing: the local credentials go anyway, exit 1 says so.
	if r := u.run("login", "--server", kc.URL()); r.code != 0 {
		t.Fatal(r.stderr)
	}
	kc.revokeStatus = http.StatusServiceUnavailable
	r = u.run("logout")
	if r.code != 1 || !strings.Contains(r.stderr, "could not be revoked") {
		t.Fatalf("logout with Keycloak failing: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(s.Path(kc.URL())); !os.IsNotExist(err) {
		t.Errorf("credentials kept after a failed revocation: %v", err)
	}
}

func TestBrokenCredentialFileIsAClearFailure(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	if r := u.run("login", "--server", kc.URL()); r.code != 0 {
		t.Fatal(r.stderr)
	}
	p := u.store().Path(kc.URL())
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0x01
	_ = os.WriteFile(p, raw, 0o600)
	for _, args := range [][]string{{"whoami"}, {"token"}, {"keys", "list"}} {
		r := u.run(args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "log in again") {
			t.Errorf("%v on a damaged file: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := u.run("doctor"); r.code != 1 || !strings.Contains(r.stdout, "problem") {
		t.Errorf("doctor on a damaged file: exit %d %q", r.code, r.stdout)
	}
}

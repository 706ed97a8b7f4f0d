package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

// TestAdminSecurityKeyInChromium: the administrators' second factor is a
// FIDO2 security key, proven in headless Chromium with a virtual
// authenticator (Chrome DevTools Protocol WebAuthn domain, through
// playwright-core: cli/e2e/browser/webauthn.mjs) on the code flow of jan-web
// with PKCE:
//
//  1. an admin for whom an administrator issued webauthn-register logs in
//     with the password, registers the key, gets a code and an admin token;
//     logged out, they log in again with password and key: a code;
//  2. the same admin in a fresh browser whose authenticator holds no
//     credential: refused after the key page, no code — also when an
//     administrator issued webauthn-register again (a further key comes only
//     after the existing one);
//  3. an admin without a key and without webauthn-register: refused right
//     after the password, never shown the registration page;
//  4. a plain user: a code after the password alone, never asked for a key.
//
// Chromium refuses WebAuthn on an IP-address origin ("SecurityError: This is
// an invalid domain", measured), and the run's Keycloak is http://127.0.0.1
// (its issuer is every suite's): the test imports keycloak/realm-jan.json as
// a realm of its own whose frontend URL is http://localhost:<port>, checks
// that its browser flow is realm jan's, execution for execution, and deletes
// it afterwards.
func TestAdminSecurityKeyInChromium(t *testing.T) {
	s := newSuite(t)
	br := requireChromium(t)
	// A realm import and a browser on a busy machine: more than newSuite's
	// 90 s (about 25 s at a load of 12 on 2 cores).
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	s.ctx = ctx
	ws := s.realmCopyAtLocalhost(t)
	if got, want := ws.browserFlow(t), s.browserFlow(t); !slices.Equal(got, want) {
		t.Fatalf("the copy's browser flow is not realm jan's:\n copy %q\n jan  %q", got, want)
	}

	adminID, admin, adminPW := ws.createUser(t, "admin")
	_, bare, barePW := ws.createUser(t, "admin")
	_, plain, plainPW := ws.createUser(t)
	// An administrator (the bootstrap admin, through the admin API) issues
	// the enrolment.
	if _, err := ws.kc.Admin(ws.ctx, http.MethodPut, "/users/"+adminID, map[string]any{"requiredActions": []string{"webauthn-register"}}, nil); err != nil {
		t.Fatalf("issue webauthn-register: %v", err)
	}

	b := br.start(s.ctx, t)
	b.do(t, map[string]any{"op": "open", "session": "key", "authenticator": "security-key"})

	t.Run("admin registers a key after the password, as issued", func(t *testing.T) {
		res, verifier := ws.browserLogin(t, b, "key", admin, adminPW, true)
		if !slices.Equal(res.Pages, []string{"login", "register-security-key"}) {
			t.Fatalf("pages %v, want the login form, then the registration", res.Pages)
		}
		ws.expectAdminToken(t, res, verifier, admin)
		if creds := b.credentials(t, "key"); len(creds) != 1 || creds[0].RPID != "localhost" || creds[0].Resident {
			t.Fatalf("virtual authenticator holds %+v, want one non-resident credential for localhost", creds)
		}
		var u struct {
			RequiredActions []string `json:"requiredActions"`
		}
		if _, err := ws.kc.Admin(ws.ctx, http.MethodGet, "/users/"+adminID, nil, &u); err != nil || len(u.RequiredActions) != 0 {
			t.Fatalf("after the registration: required actions %v (%v), want none", u.RequiredActions, err)
		}
		if types := ws.credentialTypes(t, adminID); !slices.Equal(types, []string{"password", "webauthn"}) {
			t.Fatalf("credentials %v, want password and webauthn", types)
		}
	})
	if t.Failed() {
		return
	}
	t.Run("admin logs in again with password and key", func(t *testing.T) {
		out := b.do(t, map[string]any{"op": "logout", "session": "key", "url": ws.frontend + "/protocol/openid-connect/logout"})
		if !strings.Contains(out.Text, "logged out") {
			t.Fatalf("logout: %q", out.Text)
		}
		res, verifier := ws.browserLogin(t, b, "key", admin, adminPW, true)
		if !slices.Equal(res.Pages, []string{"login", "security-key"}) {
			t.Fatalf("pages %v, want the login form, then the security key", res.Pages)
		}
		ws.expectAdminToken(t, res, verifier, admin)
		if creds := b.credentials(t, "key"); len(creds) != 1 || creds[0].SignCount < 2 {
			t.Fatalf("virtual authenticator %+v: the key did not sign a second time", creds)
		}
	})
	t.Run("the same admin without the key is refused", func(t *testing.T) {
		b.do(t, map[string]any{"op": "open", "session": "stranger", "authenticator": "security-key"})
		res, _ := ws.browserLogin(t, b, "stranger", admin, adminPW, true)
		if res.Outcome == "code" {
			t.Fatal("an admin got a code with the password and an authenticator without their key")
		}
		if !slices.Equal(res.Pages, []string{"login", "security-key"}) {
			t.Fatalf("pages %v, want the login form, then the security key page", res.Pages)
		}
		t.Logf("refused at %q: %.120s", res.Title, res.Text)
	})
	t.Run("a pending enrolment does not spare an admin who has a key the key", func(t *testing.T) {
		// Another key is registered only after the existing one: an issued
		// webauthn-register is no way around it for a password thief.
		if _, err := ws.kc.Admin(ws.ctx, http.MethodPut, "/users/"+adminID, map[string]any{"requiredActions": []string{"webauthn-register"}}, nil); err != nil {
			t.Fatalf("issue webauthn-register again: %v", err)
		}
		res, _ := ws.browserLogin(t, b, "stranger", admin, adminPW, true)
		if res.Outcome == "code" || !slices.Equal(res.Pages, []string{"login", "security-key"}) {
			t.Fatalf("outcome %s, pages %v: want refused at the security key page, no registration", res.Outcome, res.Pages)
		}
		if creds := b.credentials(t, "stranger"); len(creds) != 0 {
			t.Fatalf("a key was registered: %+v", creds)
		}
	})
	t.Run("an admin without a key or an issued enrolment is refused, never offered one", func(t *testing.T) {
		b.do(t, map[string]any{"op": "open", "session": "thief", "authenticator": "security-key"})
		res, _ := ws.browserLogin(t, b, "thief", bare, barePW, true)
		if res.Outcome == "code" || !slices.Equal(res.Pages, []string{"login"}) {
			t.Fatalf("outcome %s, pages %v: want refused right after the password", res.Outcome, res.Pages)
		}
		if !strings.Contains(res.Text, "Access denied") {
			t.Fatalf("stopped at %q: %.200s; want Keycloak's access denied page", res.Title, res.Text)
		}
		if creds := b.credentials(t, "thief"); len(creds) != 0 {
			t.Fatalf("a key was registered: %+v", creds)
		}
	})
	t.Run("a user is not asked for a key", func(t *testing.T) {
		b.do(t, map[string]any{"op": "open", "session": "user", "authenticator": "none"})
		res, verifier := ws.browserLogin(t, b, "user", plain, plainPW, false)
		if res.Outcome != "code" || !slices.Equal(res.Pages, []string{"login"}) {
			t.Fatalf("outcome %s, pages %v: want a code after the password alone", res.Outcome, res.Pages)
		}
		tok := ws.exchangeCode(t, res, verifier)
		v, _ := ws.verifier(t, nil)
		id, err := v.Verify(ws.ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("user access token: %v", err)
		}
		if id.Username != plain || id.HasRole("admin") || !id.HasRole("user") {
			t.Fatalf("user identity: %q roles %v", id.Username, id.RealmRoles)
		}
	})
}

// chromium is Debian's Chromium with playwright-core (scripts/chromium.sh).
type chromium struct{ bin, dir, node string }

// requireChromium returns the browser scripts/test.sh installed; without it
// the test skips locally and fails under CI=true with the install error.
func requireChromium(t *testing.T) chromium {
	t.Helper()
	if msg := os.Getenv("EDGEGUARD_BROWSER_ERROR"); msg != "" {
		if testenv.CI() {
			t.Fatalf("headless browser not installed: %s", msg)
		}
		t.Skipf("headless browser not installed: %s", msg)
	}
	c := chromium{bin: testenv.Require(t, "EDGEGUARD_CHROMIUM"), dir: testenv.Require(t, "EDGEGUARD_BROWSER_DIR")}
	fail := t.Skipf
	if testenv.CI() {
		fail = t.Fatalf
	}
	if _, err := os.Stat(c.bin); err != nil {
		fail("%v: run scripts/chromium.sh install", err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "node_modules", "playwright-core", "package.json")); err != nil {
		fail("playwright-core: %v: run scripts/chromium.sh install", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		fail("node: %v: run scripts/chromium.sh install", err)
	}
	c.node = node
	return c
}

// webauthnBrowser is a running webauthn.mjs: one JSON command a line in,
// one JSON answer a line out.
type webauthnBrowser struct {
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *testenv.Buffer
}

// browserAnswer is webauthn.mjs's answer. Redirect carries the code: it is
// never logged.
type browserAnswer struct {
	OK       bool                `json:"ok"`
	Op       string              `json:"op"`
	Step     string              `json:"step"`
	Error    string              `json:"error"`
	Outcome  string              `json:"outcome"`
	Redirect string              `json:"redirect"`
	Pages    []string            `json:"pages"`
	Title    string              `json:"title"`
	Text     string              `json:"text"`
	Creds    []virtualCredential `json:"credentials"`
}

// virtualCredential is what a virtual authenticator holds (never its key).
type virtualCredential struct {
	RPID      string `json:"rpId"`
	Resident  bool   `json:"resident"`
	SignCount int    `json:"signCount"`
}

func (c chromium) start(ctx context.Context, t *testing.T) *webauthnBrowser {
	t.Helper()
	cmd := exec.CommandContext(ctx, c.node, "webauthn.mjs")
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "EDGEGUARD_CHROMIUM="+c.bin)
	b := &webauthnBrowser{stderr: &testenv.Buffer{}}
	cmd.Stderr = b.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node webauthn.mjs: %v", err)
	}
	b.in = in
	b.out = bufio.NewScanner(out)
	b.out.Buffer(make([]byte, 0, 64<<10), 1<<20)
	t.Cleanup(func() {
		_ = in.Close() // the script closes the browser at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return b
}

// do sends one command and returns its answer; a failed command fails the
// test with the step and the script's (redacted) error.
func (b *webauthnBrowser) do(t *testing.T, cmd map[string]any) browserAnswer {
	t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		t.Fatalf("webauthn.mjs %s: %v (stderr: %s)", cmd["op"], err, b.stderr.String())
	}
	if !b.out.Scan() {
		t.Fatalf("webauthn.mjs %s: no answer (%v); stderr: %s", cmd["op"], b.out.Err(), b.stderr.String())
	}
	var a browserAnswer
	if err := json.Unmarshal(b.out.Bytes(), &a); err != nil {
		t.Fatalf("webauthn.mjs %s: answer is not JSON: %v", cmd["op"], err)
	}
	if a.Redirect != "" {
		if u, err := url.Parse(a.Redirect); err == nil {
			used.add(u.Query().Get("code"))
		}
	}
	if !a.OK {
		t.Fatalf("webauthn.mjs %s failed at %q after pages %v: %s", a.Op, a.Step, a.Pages, a.Error)
	}
	return a
}

// credentials lists what the session's virtual authenticator holds.
func (b *webauthnBrowser) credentials(t *testing.T, session string) []virtualCredential {
	t.Helper()
	return b.do(t, map[string]any{"op": "credentials", "session": session}).Creds
}

// browserLogin is a code-flow login of jan-web with PKCE in the browser
// session; it returns the answer and the PKCE verifier.
func (ws *localRealm) browserLogin(t *testing.T, b *webauthnBrowser, session, username string, pw keycloak.Secret, register bool) (browserAnswer, string) {
	t.Helper()
	verifier, challenge := pkce()
	q := url.Values{
		"client_id": {clientWeb}, "response_type": {"code"}, "redirect_uri": {webRedirectURI},
		"scope": {"openid"}, "state": {randHex(8)},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	start := time.Now()
	a := b.do(t, map[string]any{
		"op": "login", "session": session, "url": ws.frontend + "/protocol/openid-connect/auth?" + q.Encode(),
		"redirect": webRedirectURI, "username": username, "password": string(pw), "register": register,
	})
	t.Logf("browser login in %s: pages %v, outcome %s", time.Since(start).Round(time.Millisecond), a.Pages, a.Outcome)
	if a.Outcome == "code" {
		u, err := url.Parse(a.Redirect)
		if err != nil || u.Query().Get("code") == "" || u.Query().Get("state") != q.Get("state") {
			t.Fatal("the browser reached the redirect URI without a code and the state")
		}
	}
	return a, verifier
}

// exchangeCode redeems the code of a login answer (jan-web, PKCE).
func (ws *localRealm) exchangeCode(t *testing.T, a browserAnswer, verifier string) *keycloak.Tokens {
	t.Helper()
	if a.Outcome != "code" {
		t.Fatalf("no code: stopped at %q (%.200s) after pages %v", a.Title, a.Text, a.Pages)
	}
	u, _ := url.Parse(a.Redirect)
	tok, err := ws.kc.Token(ws.ctx, url.Values{
		"grant_type": {"authorization_code"}, "client_id": {clientWeb}, "code": {u.Query().Get("code")},
		"redirect_uri": {webRedirectURI}, "code_verifier": {verifier},
	})
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok
}

// expectAdminToken redeems the code and checks that the access token is
// username's, with role admin, verified against the realm's live JWKS.
func (ws *localRealm) expectAdminToken(t *testing.T, a browserAnswer, verifier, username string) {
	t.Helper()
	tok := ws.exchangeCode(t, a, verifier)
	v, _ := ws.verifier(t, nil)
	id, err := v.Verify(ws.ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("admin access token: %v", err)
	}
	if id.Username != username || !id.HasRole("admin") || id.ClientID != clientWeb {
		t.Fatalf("admin identity: user %q azp %q roles %v", id.Username, id.ClientID, id.RealmRoles)
	}
}

// localRealm is a suite on a realm imported from keycloak/realm-jan.json
// whose frontend URL names localhost instead of 127.0.0.1.
type localRealm struct {
	*suite
	frontend string // the realm's public base URL (http://localhost:<port>/realms/<name>)
}

// realmCopyAtLocalhost imports keycloak/realm-jan.json through the admin API
// as realm jan-webauthn-<random>, with the frontend URL (realm attribute
// frontendUrl) at localhost on Keycloak's port; the realm is deleted with
// the test. Its client secrets stay the file's literal ${…} placeholders
// (the admin API does not resolve them): the copy is for browser logins.
func (s *suite) realmCopyAtLocalhost(t *testing.T) *localRealm {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "keycloak", "realm-jan.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Fixed ids (the guest flow's, which guest-login's override names)
	// would clash with realm jan's: each gets a fresh one, references too.
	text := string(raw)
	for _, m := range regexp.MustCompile(`"id": "([^"]+)"`).FindAllStringSubmatch(text, -1) {
		text = strings.ReplaceAll(text, m[1], randUUID())
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(text), &rep); err != nil {
		t.Fatal(err)
	}
	base, err := url.Parse(s.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	if net.ParseIP(base.Hostname()) != nil {
		base.Host = net.JoinHostPort("localhost", base.Port())
	}
	name := "jan-webauthn-" + randHex(4)
	rep["realm"] = name
	attrs, _ := rep["attributes"].(map[string]any)
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["frontendUrl"] = base.String()
	rep["attributes"] = attrs
	tok, err := s.kc.AdminToken(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.kc.AdminURL(s.ctx, tok, http.MethodPost, s.env.URL+"/admin/realms", rep, nil); err != nil {
		t.Fatalf("import realm-jan.json as %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if tok, err := s.kc.AdminToken(ctx); err == nil {
			_, _ = s.kc.AdminURL(ctx, tok, http.MethodDelete, s.env.URL+"/admin/realms/"+name, nil, nil)
		}
	})
	env := *s.env
	env.Realm = name
	env.Issuer = base.String() + "/realms/" + name
	env.JWKSURL = s.env.URL + "/realms/" + name + "/protocol/openid-connect/certs"
	kc := keycloak.NewClient(&env)
	kc.Record = used.add
	return &localRealm{suite: &suite{env: &env, kc: kc, ctx: s.ctx}, frontend: env.Issuer}
}

func randUUID() string {
	h := randHex(16)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// browserFlow lists the realm's browser flow as the admin API serves it:
// one line per execution (depth, what it runs, requirement, its config's
// settings).
func (s *suite) browserFlow(t *testing.T) []string {
	t.Helper()
	var execs []struct {
		Level       int    `json:"level"`
		Requirement string `json:"requirement"`
		DisplayName string `json:"displayName"`
		ProviderID  string `json:"providerId"`
		Config      string `json:"authenticationConfig"`
	}
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/authentication/flows/"+url.PathEscape("jan browser")+"/executions", nil, &execs); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range execs {
		what := e.ProviderID
		if what == "" {
			what = "flow " + e.DisplayName
		}
		line := fmt.Sprintf("%s%s %s", strings.Repeat("  ", e.Level), what, e.Requirement)
		if e.Config != "" {
			var cfg struct {
				Config map[string]string `json:"config"`
			}
			if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/authentication/config/"+e.Config, nil, &cfg); err != nil {
				t.Fatal(err)
			}
			keys := make([]string, 0, len(cfg.Config))
			for k := range cfg.Config {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var kv bytes.Buffer
			for _, k := range keys {
				fmt.Fprintf(&kv, " %s=%s", k, cfg.Config[k])
			}
			line += " {" + strings.TrimSpace(kv.String()) + "}"
		}
		lines = append(lines, line)
	}
	return lines
}

// credentialTypes lists the types of a user's credentials, sorted.
func (s *suite) credentialTypes(t *testing.T, userID string) []string {
	t.Helper()
	var creds []struct {
		Type string `json:"type"`
	}
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/users/"+userID+"/credentials", nil, &creds); err != nil {
		t.Fatal(err)
	}
	types := make([]string, len(creds))
	for i, c := range creds {
		types[i] = c.Type
	}
	slices.Sort(types)
	return types
}

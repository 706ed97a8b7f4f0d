// Package e2e runs edgectl end to end against the real Keycloak that
// scripts/test.sh starts, with a person's part played by headless Chromium
// (Debian's chromium driven by playwright-core, scripts/chromium.sh).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/cmd"
	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// edgectl runs edgectl in process with its own config directory and the
// key-file fallback (there is no OS keyring here).
type edgectl struct {
	dir string
}

func (e edgectl) env(stdout, stderr io.Writer) cmd.Env {
	vars := map[string]string{"EDGEGUARD_KEYRING": "file"}
	return cmd.Env{
		Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
		ConfigDir: e.dir, Getenv: func(k string) string { return vars[k] },
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func (e edgectl) run(ctx context.Context, args ...string) result {
	var out, errb bytes.Buffer
	code := e.env(&out, &errb).Run(ctx, args)
	return result{code, out.String(), errb.String()}
}

// login is a running "edgectl login".
type login struct {
	url            string
	stdout, stderr *testenv.Buffer
	done           chan int
}

// startLogin runs "edgectl login" in process with stdout on a pipe and
// returns once it printed the verification URL.
func (e edgectl) startLogin(ctx context.Context, t *testing.T, server string) *login {
	t.Helper()
	pr, pw := io.Pipe()
	l := &login{stdout: &testenv.Buffer{}, stderr: &testenv.Buffer{}, done: make(chan int, 1)}
	copied := make(chan struct{}) // every line of stdout is in l.stdout
	go func() {
		code := e.env(pw, l.stderr).Run(ctx, []string{"login", "--server", server})
		_ = pw.Close()
		<-copied // the exit code only once its output is all there to check
		l.done <- code
	}()
	urls := make(chan string, 1)
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = l.stdout.Write([]byte(line + "\n"))
			if u, ok := strings.CutPrefix(line, "  "); ok && strings.HasPrefix(u, "http") {
				select {
				case urls <- u:
				default:
				}
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatalf("edgectl login printed no URL: exit %d, stdout %q, stderr %q", <-l.done, l.stdout.String(), l.stderr.String())
		}
		l.url = u
	case <-time.After(20 * time.Second):
		t.Fatalf("edgectl login printed no URL within 20 s: stdout %q stderr %q", l.stdout.String(), l.stderr.String())
	}
	return l
}

func (l *login) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-l.done:
		return code
	case <-time.After(40 * time.Second):
		t.Fatalf("edgectl login did not end within 40 s of the browser's answer: stdout %q stderr %q", l.stdout.String(), l.stderr.String())
		return -1
	}
}

// TestDeviceLoginApprovedInChromium: edgectl login against the real realm,
// approved by a person in headless Chromium; whoami shows that person, the
// token verifies against the live JWKS, the credential file holds no
// token, logout revokes the session.
func TestDeviceLoginApprovedInChromium(t *testing.T) {
	kc := requireKeycloak(t)
	br := requireBrowser(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	u := kc.createUser(ctx, t)
	e := edgectl{dir: t.TempDir()}

	l := e.startLogin(ctx, t, kc.url)
	if !strings.HasPrefix(l.url, kc.issuer+"/device?user_code=") {
		t.Fatalf("verification URL %q: want verification_uri_complete under %s", l.url, kc.issuer)
	}
	page := br.act(ctx, t, "approve", l.url, u)
	if code := l.wait(t); code != 0 {
		t.Fatalf("edgectl login: exit %d, stdout %q, stderr %q (browser: %s)", code, l.stdout.String(), l.stderr.String(), page)
	}
	if !strings.Contains(l.stdout.String(), "Logged in to "+kc.url+" as "+u.username) {
		t.Errorf("login output: %q", l.stdout.String())
	}
	t.Logf("login approved after %s", time.Since(start).Round(time.Millisecond))

	// whoami shows the person who approved in the browser.
	who := e.run(ctx, "whoami", "--json")
	if who.code != 0 {
		t.Fatalf("whoami: exit %d, stderr %q", who.code, who.stderr)
	}
	var w struct {
		Server, Sub, Username, Email, Azp, Iss string
		Roles                                  []string
		Expired                                bool
	}
	if err := json.Unmarshal([]byte(who.stdout), &w); err != nil {
		t.Fatalf("whoami --json: %q: %v", who.stdout, err)
	}
	if w.Username != u.username || w.Sub != u.id || w.Azp != "jan-cli" || w.Iss != kc.issuer ||
		w.Server != kc.url || !slices.Contains(w.Roles, "user") || w.Expired {
		t.Errorf("whoami: %s; want user %s (%s), azp jan-cli, role user", who.stdout, u.username, u.id)
	}
	table := e.run(ctx, "whoami")
	if table.code != 0 || !strings.Contains(table.stdout, u.username) {
		t.Errorf("whoami table: exit %d %q", table.code, table.stdout)
	}

	// edgectl token prints the access token, which the edge's verifier
	// accepts against the live JWKS.
	tok := e.run(ctx, "token")
	access := strings.TrimSuffix(tok.stdout, "\n")
	if tok.code != 0 || strings.Count(tok.stdout, "\n") != 1 || tok.stderr != "" {
		t.Fatalf("token: exit %d, %d lines, stderr %q", tok.code, strings.Count(tok.stdout, "\n"), tok.stderr)
	}
	v, err := jwtauth.New(jwtauth.Config{
		Issuers:    []jwtauth.Issuer{{Issuer: kc.issuer, JWKSURL: kc.jwksURL}},
		Audiences:  []string{"jan-api"},
		AllowedAZP: []string{"jan-cli", "jan-web", "guest-login"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	id, err := v.Verify(ctx, access)
	if err != nil || id.Subject != u.id || id.Username != u.username {
		t.Fatalf("the printed token: %v (identity %+v)", err, id)
	}

	// The credential file is 0600 in a 0700 directory and carries no token
	// or token part in clear; the session's refresh token neither.
	store, err := credstore.New(credstore.Options{Dir: e.dir, Mode: credstore.ModeFile})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := store.Load(kc.url)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(store.Path(kc.url))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(tokenParts(access), tokenParts(string(creds.RefreshToken))...) {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("the credential file carries a token part in clear (%d bytes)", len(s))
		}
	}
	for p, want := range map[string]os.FileMode{store.Path(kc.url): 0o600, store.KeyPath(kc.url): 0o600, store.CredDir(): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %04o", filepath.Base(p), err, fi.Mode().Perm(), want)
		}
	}

	// No command printed a token, except edgectl token.
	doc := e.run(ctx, "doctor")
	for _, r := range []result{who, table, doc, {stdout: l.stdout.String(), stderr: l.stderr.String()}} {
		for _, s := range append(tokenParts(access), tokenParts(string(creds.RefreshToken))...) {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Fatalf("output carries a token part: %q", r.stdout)
			}
		}
	}
	if doc.code != 0 || !strings.Contains(doc.stdout, "file fallback") {
		t.Errorf("doctor: exit %d %q", doc.code, doc.stdout)
	}

	// Logout revokes the refresh token at Keycloak and deletes the files.
	out := e.run(ctx, "logout")
	if out.code != 0 {
		t.Fatalf("logout: exit %d, stderr %q", out.code, out.stderr)
	}
	if _, err := os.Stat(store.Path(kc.url)); !os.IsNotExist(err) {
		t.Errorf("credential file after logout: %v", err)
	}
	if status, code := refresh(ctx, t, creds.TokenEndpoint, string(creds.RefreshToken)); status != http.StatusBadRequest || code != "invalid_grant" {
		t.Errorf("refresh after logout: %d %q, want 400 invalid_grant", status, code)
	}
	if r := e.run(ctx, "whoami", "--server", kc.url); r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("whoami after logout: exit %d %q", r.code, r.stderr)
	}
	t.Logf("approve path done in %s", time.Since(start).Round(time.Millisecond))
}

// TestDeviceLoginDeniedInChromium: the person clicks "No" on the grant page;
// edgectl login ends with exit 1 and access_denied, and stores nothing.
func TestDeviceLoginDeniedInChromium(t *testing.T) {
	kc := requireKeycloak(t)
	br := requireBrowser(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := time.Now()
	u := kc.createUser(ctx, t)
	e := edgectl{dir: t.TempDir()}

	l := e.startLogin(ctx, t, kc.url)
	br.act(ctx, t, "deny", l.url, u)
	if code := l.wait(t); code != 1 {
		t.Fatalf("edgectl login after deny: exit %d, want 1 (stdout %q, stderr %q)", code, l.stdout.String(), l.stderr.String())
	}
	if !strings.Contains(l.stderr.String(), "access_denied") || strings.Contains(l.stdout.String(), "Logged in") {
		t.Errorf("deny: stdout %q stderr %q; want an access_denied message", l.stdout.String(), l.stderr.String())
	}
	entries, _ := os.ReadDir(filepath.Join(e.dir, "credentials"))
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".json") {
			t.Errorf("a denied login stored credentials: %s", en.Name())
		}
	}
	t.Logf("deny path done in %s", time.Since(start).Round(time.Millisecond))
}

// tokenParts are the token and its three base64url parts.
func tokenParts(tok string) []string {
	if tok == "" {
		return nil
	}
	out := []string{tok}
	for _, p := range strings.Split(tok, ".") {
		if len(p) >= 16 {
			out = append(out, p)
		}
	}
	return out
}

// refresh tries a refresh grant and returns the status and OAuth error code.
func refresh(ctx context.Context, t *testing.T, endpoint, rt string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"jan-cli"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
	return resp.StatusCode, e.Error
}

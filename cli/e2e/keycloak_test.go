package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// realm is the Keycloak that scripts/keycloak.sh started (its env lines,
// exported by scripts/test.sh).
type realm struct {
	url, name, issuer, jwksURL string
	adminUser, adminPW         string
	hc                         *http.Client
}

func requireKeycloak(t *testing.T) *realm {
	t.Helper()
	r := &realm{url: strings.TrimSuffix(testenv.Require(t, "KEYCLOAK_URL"), "/"), hc: &http.Client{Timeout: 15 * time.Second}}
	r.name = os.Getenv("KEYCLOAK_REALM")
	if r.name == "" {
		r.name = "jan"
	}
	r.issuer = testenv.Require(t, "KEYCLOAK_ISSUER")
	r.jwksURL = testenv.Require(t, "KEYCLOAK_JWKS_URL")
	r.adminUser = testenv.Require(t, "KEYCLOAK_ADMIN_USERNAME")
	b, err := os.ReadFile(testenv.Require(t, "KEYCLOAK_ADMIN_PASSWORD_FILE"))
	if err != nil {
		t.Fatalf("KEYCLOAK_ADMIN_PASSWORD_FILE: %v", err)
	}
	r.adminPW = strings.TrimSpace(string(b))
	return r
}

func (r *realm) adminToken(ctx context.Context, t *testing.T) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {r.adminUser}, "password": {r.adminPW}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/realms/master/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := r.hc.Do(req)
	if err != nil {
		t.Fatalf("admin login: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tok) != nil || tok.AccessToken == "" {
		t.Fatalf("admin login: status %d", resp.StatusCode)
	}
	return tok.AccessToken
}

// admin calls the realm's admin REST API as the bootstrap admin.
func (r *realm) admin(ctx context.Context, t *testing.T, method, p string, in any) *http.Response {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+"/admin/realms/"+r.name+p, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+r.adminToken(ctx, t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, p, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp
}

type user struct{ id, username, password string }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// createUser creates a plain user (default role user) with a password that
// fits the realm's policy; it is deleted with the test.
func (r *realm) createUser(ctx context.Context, t *testing.T) user {
	t.Helper()
	u := user{username: "cli-" + randHex(6), password: "Pw-" + randHex(16)}
	resp := r.admin(ctx, t, http.MethodPost, "/users", map[string]any{
		"username": u.username, "enabled": true, "email": u.username + "@example.com", "emailVerified": true,
		"firstName": "Edge", "lastName": "Ctl",
		"credentials": []map[string]any{{"type": "password", "value": u.password, "temporary": false}},
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create user: status %d", resp.StatusCode)
	}
	u.id = path.Base(resp.Header.Get("Location"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		r.admin(ctx, t, http.MethodDelete, "/users/"+u.id, nil)
	})
	return u
}

// browser is Debian's Chromium with playwright-core (scripts/chromium.sh).
type browser struct{ chromium, dir, node string }

// requireBrowser returns the browser scripts/test.sh installed; without it
// the test skips locally and fails under CI=true with the install error.
func requireBrowser(t *testing.T) browser {
	t.Helper()
	if msg := os.Getenv("EDGEGUARD_BROWSER_ERROR"); msg != "" {
		if testenv.CI() {
			t.Fatalf("headless browser not installed: %s", msg)
		}
		t.Skipf("headless browser not installed: %s", msg)
	}
	b := browser{chromium: testenv.Require(t, "EDGEGUARD_CHROMIUM"), dir: testenv.Require(t, "EDGEGUARD_BROWSER_DIR")}
	fail := t.Skipf
	if testenv.CI() {
		fail = t.Fatalf
	}
	if _, err := os.Stat(b.chromium); err != nil {
		fail("%v: run scripts/chromium.sh install", err)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "node_modules", "playwright-core", "package.json")); err != nil {
		fail("playwright-core: %v: run scripts/chromium.sh install (npm ci in cli/e2e/browser)", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		fail("node: %v: run scripts/chromium.sh install", err)
	}
	b.node = node
	return b
}

// act opens verificationURL in headless Chromium, logs in as u and answers
// the grant page: approve ("Yes") or deny ("No").
func (b browser) act(ctx context.Context, t *testing.T, action, verificationURL string, u user) string {
	t.Helper()
	in, _ := json.Marshal(map[string]string{"url": verificationURL, "username": u.username, "password": u.password})
	c := exec.CommandContext(ctx, b.node, "device.mjs", action)
	c.Dir = b.dir
	c.Env = append(os.Environ(), "EDGEGUARD_CHROMIUM="+b.chromium)
	c.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	if err := c.Run(); err != nil {
		t.Fatalf("node device.mjs %s: %v\nstdout: %s\nstderr: %s", action, err, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), u.password) {
		t.Fatal("device.mjs printed the password")
	}
	t.Logf("browser %s in %s: %s", action, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out.String()))
	return out.String()
}

func (r *realm) String() string { return fmt.Sprintf("keycloak %s realm %s", r.url, r.name) }

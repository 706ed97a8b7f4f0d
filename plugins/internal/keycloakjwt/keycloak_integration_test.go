package keycloakjwt

// The keycloak-jwt plugin against the real Keycloak that scripts/test.sh
// starts (scripts/keycloak.sh): a guest's access token from the live realm
// passes the plugin with the design's configuration, the route policy refuses
// the guest where guests are forbidden, and the same login's ID token is
// refused. The wider Keycloak suite is tests/e2e; this file only covers what
// tests/e2e cannot import (this package is internal to the plugins module).
// Without KEYCLOAK_URL it skips locally and fails under CI=true.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

type liveKeycloak struct {
	url, issuer, jwksURL string
	adminUser            string
	adminPassword        string // secrets: never logged
	guestLoginSecret     string
	hc                   *http.Client
}

func requireKeycloak(t *testing.T) *liveKeycloak {
	t.Helper()
	k := &liveKeycloak{
		url:       strings.TrimSuffix(os.Getenv("KEYCLOAK_URL"), "/"),
		issuer:    os.Getenv("KEYCLOAK_ISSUER"),
		jwksURL:   os.Getenv("KEYCLOAK_JWKS_URL"),
		adminUser: os.Getenv("KEYCLOAK_ADMIN_USERNAME"),
		hc:        &http.Client{Timeout: 15 * time.Second},
	}
	if k.url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KEYCLOAK_URL unset under CI=true: scripts/test.sh must start Keycloak (scripts/keycloak.sh)")
		}
		t.Skip("KEYCLOAK_URL unset: no Keycloak (scripts/keycloak.sh start)")
	}
	for env, dst := range map[string]*string{
		"KEYCLOAK_ADMIN_PASSWORD_FILE":            &k.adminPassword,
		"KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE": &k.guestLoginSecret,
	} {
		b, err := os.ReadFile(os.Getenv(env))
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		*dst = strings.TrimSpace(string(b))
	}
	if k.issuer == "" || k.jwksURL == "" || k.adminUser == "" {
		t.Fatal("KEYCLOAK_ISSUER, KEYCLOAK_JWKS_URL and KEYCLOAK_ADMIN_USERNAME must be set with KEYCLOAK_URL")
	}
	return k
}

// token posts a form to a token endpoint and returns the named tokens.
func (k *liveKeycloak) token(t *testing.T, realm string, form url.Values) map[string]any {
	t.Helper()
	resp, err := k.hc.PostForm(k.url+"/realms/"+realm+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token endpoint of realm %s: status %d, error %v", realm, resp.StatusCode, m["error"])
	}
	return m
}

func (k *liveKeycloak) admin(t *testing.T, bearer, method, p string, in any) *http.Response {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, k.url+"/admin/realms/jan"+p, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		t.Fatalf("admin API %s %s: status %d", method, p, resp.StatusCode)
	}
	return resp
}

// guestLogin creates a guest (group guests, without the default roles) and
// logs it in through guest-login with scope openid.
func (k *liveKeycloak) guestLogin(t *testing.T) (sub string, tokens map[string]any) {
	t.Helper()
	adm := k.token(t, "master", url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"},
		"username": {k.adminUser}, "password": {k.adminPassword}})["access_token"].(string)
	rnd := make([]byte, 16)
	_, _ = rand.Read(rnd)
	username, pw := "guest-plugin-"+hex.EncodeToString(rnd[:4]), "Pw-"+hex.EncodeToString(rnd)
	resp := k.admin(t, adm, http.MethodPost, "/users", map[string]any{
		"username": username, "enabled": true, "groups": []string{"/guests"},
		"attributes":  map[string][]string{"guest": {"true"}},
		"credentials": []map[string]any{{"type": "password", "value": pw, "temporary": false}},
	})
	resp.Body.Close()
	sub = path.Base(resp.Header.Get("Location"))
	t.Cleanup(func() { k.admin(t, adm, http.MethodDelete, "/users/"+sub, nil).Body.Close() })

	resp = k.admin(t, adm, http.MethodGet, "/users/"+sub+"/role-mappings/realm", nil)
	var roles []map[string]any
	err := json.NewDecoder(resp.Body).Decode(&roles)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	roles = slices.DeleteFunc(roles, func(r map[string]any) bool { return r["name"] != "default-roles-jan" })
	k.admin(t, adm, http.MethodDelete, "/users/"+sub+"/role-mappings/realm", roles).Body.Close()

	return sub, k.token(t, "jan", url.Values{"grant_type": {"password"}, "client_id": {"guest-login"},
		"client_secret": {k.guestLoginSecret}, "username": {username}, "password": {pw}, "scope": {"openid"}})
}

func TestLiveKeycloakTokensThroughThePlugin(t *testing.T) {
	k := requireKeycloak(t)
	sub, tokens := k.guestLogin(t)
	access, _ := tokens["access_token"].(string)
	idToken, _ := tokens["id_token"].(string)
	if access == "" || idToken == "" {
		t.Fatal("guest login returned no access or ID token")
	}

	// The Kong configuration as JSON (go-pdk decodes it the same way), then
	// the exported lifecycle: Provision once, Handle per request. The first
	// request joins the verifier's initial JWKS fetch.
	plugin := func(extra map[string]any) *Config {
		m := map[string]any{
			"issuers":     []map[string]any{{"issuer": k.issuer, "jwks_url": k.jwksURL}},
			"audiences":   []string{"jan-api"},
			"allowed_azp": []string{"jan-cli", "jan-web", "guest-login"},
		}
		for key, v := range extra {
			m[key] = v
		}
		js, _ := json.Marshal(m)
		var c Config
		if err := json.Unmarshal(js, &c); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Pipeline(); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	tests := []struct {
		name   string
		extra  map[string]any
		token  string
		status int // 0: passed on
		code   string
	}{
		{"guest access token on an open route", nil, access, 0, ""},
		{"guest on a route that forbids guests", map[string]any{"forbidden_roles": []string{"guest"}}, access, http.StatusForbidden, "forbidden_role"},
		{"ID token of the same login", nil, idToken, http.StatusUnauthorized, "token_type_invalid"},
		{"admin route", map[string]any{"required_roles": []string{"admin"}}, access, http.StatusForbidden, "insufficient_role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := exchange.NewFake("POST", "/v1/chat/completions", map[string][]string{
				"Authorization": {"Bearer " + tc.token},
				"X-User-ID":     {"spoofed"},
			})
			plugin(tc.extra).Handle(f)
			if f.ExitStatus != tc.status {
				t.Fatalf("status %d, want %d", f.ExitStatus, tc.status)
			}
			if tc.status != 0 {
				var e struct {
					Error struct{ Code string } `json:"error"`
				}
				if err := json.Unmarshal(f.ExitBody, &e); err != nil || e.Error.Code != tc.code {
					t.Fatalf("error code %q (%v), want %q", e.Error.Code, err, tc.code)
				}
				return
			}
			if f.Identity == nil || f.Identity.Subject != sub || !f.Identity.Guest {
				t.Fatalf("identity: %v; want guest %s", f.Identity != nil, sub)
			}
			if f.Upstream["X-User-ID"] != sub || f.Upstream["X-User-Guest"] != "true" || f.Upstream["X-User-Roles"] != "guest" {
				t.Errorf("upstream identity headers: id %q guest %q roles %q", f.Upstream["X-User-ID"], f.Upstream["X-User-Guest"], f.Upstream["X-User-Roles"])
			}
			if !slices.Contains(f.Cleared, "x-user-id") {
				t.Error("the client's X-User-ID was not stripped")
			}
		})
	}
}

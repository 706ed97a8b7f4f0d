package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/kctest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keycloak"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
	"github.com/rs/zerolog"
)

// guestEnv is the public router with guest sessions on a fake Keycloak
// (the real gocloak clients against kctest) and in-process limits on a
// test clock.
type guestEnv struct {
	*harness
	kc *kctest.Fake

	mu  sync.Mutex
	now time.Time
}

type guestOpts struct {
	perIP      string
	maxPerHour int
	trusted    []string
	audit      *audit.Emitter
}

func newGuestEnv(t testing.TB, o guestOpts) *guestEnv {
	t.Helper()
	if o.perIP == "" {
		o.perIP = "5/h"
	}
	if o.maxPerHour == 0 {
		o.maxPerHour = 1000
	}
	e := &guestEnv{kc: kctest.New(t), now: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}
	src, err := keycloak.New(keycloak.Config{URL: e.kc.URL, Realm: kctest.Realm, ClientID: kctest.ServiceClient, ClientSecret: kctest.ServiceSecret})
	if err != nil {
		t.Fatal(err)
	}
	gt, err := keycloak.NewGuestTokens(keycloak.Config{URL: e.kc.URL, Realm: kctest.Realm, ClientID: kctest.GuestClient, ClientSecret: kctest.GuestClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.NewLocal(ratelimit.LocalConfig{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	perIP, err := ratelimit.ParseLimits(o.perIP)
	if err != nil {
		t.Fatal(err)
	}
	e.harness = newHarness(t, options{trusted: o.trusted, audit: o.audit, guests: func(log zerolog.Logger) *guests.Service {
		s, err := guests.New(guests.Config{Directory: src, Issuer: gt, Limiter: lim, PerIP: perIP, MaxPerHour: o.maxPerHour,
			SessionPerIP: []ratelimit.Limit{{Rate: 100, Period: time.Minute}}, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}})
	return e
}

func (e *guestEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *guestEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// post sends a POST from the peer address remote ("ip:port").
func (e *guestEnv) post(path, body, remote string, header map[string]string) resp {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(http.MethodPost, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = remote
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.public.ServeHTTP(w, req)
	return resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

func (e *guestEnv) login(t testing.TB, remote string) server.TokenResponse {
	t.Helper()
	r := e.post("/auth/guest-login", "", remote, nil)
	if r.status != http.StatusOK {
		t.Fatalf("guest login: %d %s", r.status, r.body)
	}
	var tr server.TokenResponse
	r.json(t, &tr)
	return tr
}

func session(tok string) string {
	b, _ := json.Marshal(map[string]string{"refresh_token": tok})
	return string(b)
}

func TestGuestLoginCreatesAGuestAndAnswersOnlyTokens(t *testing.T) {
	e := newGuestEnv(t, guestOpts{})
	r := e.post("/auth/guest-login", "", "192.0.2.1:4000", nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var m map[string]any
	r.json(t, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"access_token", "expires_in", "refresh_expires_in", "refresh_token", "token_type"}; !slices.Equal(keys, want) {
		t.Fatalf("answer fields %v, want %v", keys, want)
	}
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(300) || m["access_token"] == "" || m["refresh_token"] == "" {
		t.Fatalf("answer %s", r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("RateLimit-Limit") != "5" || r.header.Get("RateLimit-Remaining") != "4" ||
		r.header.Get("X-RateLimit-Remaining-Hour") != "4" {
		t.Fatalf("headers %v", r.header)
	}
	users := e.kc.Users()
	if len(users) != 1 {
		t.Fatalf("%d users", len(users))
	}
	u := users[0]
	if !strings.HasPrefix(u.Username, "guest-") || !u.Enabled || !slices.Equal(u.Groups, []string{"/guests"}) ||
		!slices.Equal(u.Attributes["guest"], []string{"true"}) || len(u.RealmRoles) != 0 || len(u.Password) < 12 {
		t.Fatalf("guest in Keycloak %+v (password %d chars)", u, len(u.Password))
	}
	if strings.Contains(string(r.body), u.Password) || strings.Contains(string(r.body), u.Username) {
		t.Fatal("the answer carries the guest's password or username")
	}
	if e.kc.Calls(kctest.OpPassword) != 1 || e.kc.Calls(kctest.OpUnmapRoles) != 1 {
		t.Fatal("no password grant or no role removal")
	}
}

func TestGuestLoginKeycloakErrorsAre502AndLeaveNoGuest(t *testing.T) {
	for _, op := range []string{kctest.OpServiceLogin, kctest.OpCreate, kctest.OpRoles, kctest.OpUnmapRoles, kctest.OpPassword} {
		for _, status := range []int{400, 401, 403, 500, 503} {
			t.Run(op+"/"+strconv.Itoa(status), func(t *testing.T) {
				e := newGuestEnv(t, guestOpts{})
				e.kc.Fail(op, status)
				r := e.post("/auth/guest-login", "", "192.0.2.1:4000", nil)
				if r.status != http.StatusBadGateway || r.code() != "idp_error" {
					t.Fatalf("got %d %s", r.status, r.body)
				}
				if strings.Contains(string(r.body), kctest.LeakMarker) || strings.Contains(string(r.body), "injected") {
					t.Fatalf("Keycloak's answer echoed: %s", r.body)
				}
				if n := len(e.kc.Users()); n != 0 {
					t.Fatalf("%d orphan guests", n)
				}
			})
		}
	}
	// Keycloak unreachable
	unreachable := newHarness(t, options{guests: func(log zerolog.Logger) *guests.Service {
		src, _ := keycloak.New(keycloak.Config{URL: "http://127.0.0.1:1", Realm: "jan", ClientID: "llm-api", ClientSecret: "x", Timeout: time.Second})
		gt, _ := keycloak.NewGuestTokens(keycloak.Config{URL: "http://127.0.0.1:1", Realm: "jan", ClientID: "guest-login", ClientSecret: "x", Timeout: time.Second})
		lim, _ := ratelimit.NewLocal(ratelimit.LocalConfig{})
		s, _ := guests.New(guests.Config{Directory: src, Issuer: gt, Limiter: lim, Logger: log})
		return s
	}})
	for _, p := range []string{"/auth/guest-login", "/auth/refresh", "/auth/logout"} {
		body := ""
		if p != "/auth/guest-login" {
			body = session("eyJx.y.z")
		}
		if r := serve(unreachable.public, http.MethodPost, p, strings.NewReader(body), map[string]string{"Content-Type": "application/json"}); r.status != http.StatusBadGateway || r.code() != "idp_error" {
			t.Fatalf("%s with Keycloak down: %d %s", p, r.status, r.body)
		}
	}
}

func TestGuestLoginIsLimitedPerClientIPv4AndIPv6Per64(t *testing.T) {
	e := newGuestEnv(t, guestOpts{})
	for range 5 {
		e.login(t, "192.0.2.1:4000")
	}
	r := e.post("/auth/guest-login", "", "192.0.2.1:4001", nil)
	ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != http.StatusTooManyRequests || r.code() != "rate_limited" || ra < 1 || ra > 720 || r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("sixth from 192.0.2.1: %d %s %v", r.status, r.body, r.header)
	}
	e.login(t, "192.0.2.2:4000") // the neighbour has its own budget

	for i := range 5 {
		e.login(t, "[2001:db8:1:2::"+strconv.Itoa(i+1)+"]:443")
	}
	if r := e.post("/auth/guest-login", "", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("another host of the same /64: %d", r.status)
	}
	e.login(t, "[2001:db8:1:3::1]:443") // the next /64

	// a client cannot pick its address: X-Forwarded-For from an untrusted
	// peer is ignored
	if r := e.post("/auth/guest-login", "", "192.0.2.1:4002", map[string]string{"X-Forwarded-For": "203.0.113.77"}); r.status != http.StatusTooManyRequests {
		t.Fatalf("X-Forwarded-For from an untrusted peer was believed: %d", r.status)
	}
	if n := len(e.kc.Users()); n != 12 {
		t.Fatalf("%d guests, want 12", n)
	}
	// the budget comes back with time (5/h: one per 12 minutes)
	e.advance(12 * time.Minute)
	e.login(t, "192.0.2.1:4000")
}

func TestGuestLoginBehindTrustedProxiesUsesTheForwardedClient(t *testing.T) {
	e := newGuestEnv(t, guestOpts{trusted: []string{"10.0.0.0/24"}})
	kong := "10.0.0.5:50000"
	for range 5 {
		if r := e.post("/auth/guest-login", "", kong, map[string]string{"X-Forwarded-For": "198.51.100.1"}); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	// the client prepends a fake address: the rightmost untrusted one counts
	if r := e.post("/auth/guest-login", "", kong, map[string]string{"X-Forwarded-For": "203.0.113.1, 198.51.100.1"}); r.status != http.StatusTooManyRequests {
		t.Fatalf("spoofed chain: %d", r.status)
	}
	if r := e.post("/auth/guest-login", "", kong, map[string]string{"X-Forwarded-For": "198.51.100.2"}); r.status != 200 {
		t.Fatalf("another client behind the proxy: %d", r.status)
	}
}

func TestGuestLoginGlobalCeiling(t *testing.T) {
	e := newGuestEnv(t, guestOpts{maxPerHour: 3})
	for i := range 3 {
		e.login(t, "198.51.100."+strconv.Itoa(i+1)+":1000")
	}
	r := e.post("/auth/guest-login", "", "198.51.100.99:1000", nil)
	if r.status != http.StatusTooManyRequests || r.code() != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the ceiling: %d %s", r.status, r.body)
	}
	if n := len(e.kc.Users()); n != 3 {
		t.Fatalf("%d guests", n)
	}
}

func TestRefreshAndLogoutOfAGuestSession(t *testing.T) {
	e := newGuestEnv(t, guestOpts{})
	const ip = "192.0.2.1:4000"
	tr := e.login(t, ip)
	r := e.post("/auth/refresh", session(tr.RefreshToken), ip, nil)
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	var next server.TokenResponse
	r.json(t, &next)
	if next.AccessToken == "" || next.RefreshToken == "" || next.RefreshToken == tr.RefreshToken || next.TokenType != "Bearer" {
		t.Fatalf("refreshed %+v", next)
	}
	// rotated away: the old refresh token works once
	if r := e.post("/auth/refresh", session(tr.RefreshToken), ip, nil); r.status != 401 || r.code() != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", r.status, r.body)
	}
	if r := e.post("/auth/logout", session(next.RefreshToken), ip, nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if !e.kc.Revoked(next.RefreshToken) {
		t.Fatal("not revoked at Keycloak")
	}
	if r := e.post("/auth/refresh", session(next.RefreshToken), ip, nil); r.status != 401 || r.code() != "invalid_grant" {
		t.Fatalf("refresh after logout: %d %s", r.status, r.body)
	}
	// an unknown token logs out quietly (RFC 7009)
	if r := e.post("/auth/logout", session("eyJunknown.token.x"), ip, nil); r.status != http.StatusNoContent {
		t.Fatalf("logout of an unknown token: %d", r.status)
	}
	for _, op := range []string{kctest.OpRefresh, kctest.OpRevoke} {
		e.kc.Fail(op, http.StatusServiceUnavailable)
	}
	for _, p := range []string{"/auth/refresh", "/auth/logout"} {
		if r := e.post(p, session("eyJa.b.c"), ip, nil); r.status != http.StatusBadGateway || strings.Contains(string(r.body), kctest.LeakMarker) {
			t.Fatalf("%s with Keycloak failing: %d %s", p, r.status, r.body)
		}
	}
}

func TestGuestBodiesAreValidatedNever5xx(t *testing.T) {
	e := newGuestEnv(t, guestOpts{perIP: "1000/h"})
	big := `{"refresh_token":"` + strings.Repeat("a", 20<<10) + `"}`
	cases := []struct {
		path, body, ctype string
		status            int
		code              string
	}{
		{"/auth/guest-login", `{}`, "application/json", 200, ""},
		{"/auth/guest-login", ` {} `, "", 200, ""},
		{"/auth/guest-login", `{"username":"admin"}`, "application/json", 400, "unknown_field"},
		{"/auth/guest-login", `[]`, "application/json", 400, "invalid_json"},
		{"/auth/guest-login", `{`, "application/json", 400, "invalid_json"},
		{"/auth/guest-login", `{}`, "text/plain", 415, "unsupported_media_type"},
		{"/auth/guest-login", strings.Repeat(" ", 2<<10) + "{}", "application/json", 413, "body_too_large"},
		{"/auth/refresh", ``, "", 400, "invalid_json"},
		{"/auth/refresh", `null`, "application/json", 400, "invalid_json"},
		{"/auth/refresh", `{}`, "application/json", 400, "invalid_refresh_token"},
		{"/auth/refresh", `{"refresh_token":""}`, "application/json", 400, "invalid_refresh_token"},
		{"/auth/refresh", `{"refresh_token":1}`, "application/json", 400, "invalid_field_type"},
		{"/auth/refresh", `{"refresh_token":"a b"}`, "application/json", 400, "invalid_refresh_token"},
		{"/auth/refresh", `{"refresh_token":"a\u0000b"}`, "application/json", 400, "invalid_refresh_token"},
		{"/auth/refresh", `{"refresh_token":"x","grant_type":"password"}`, "application/json", 400, "unknown_field"},
		{"/auth/refresh", `{"refresh_token":"x"} {}`, "application/json", 400, "invalid_json"},
		{"/auth/refresh", big, "application/json", 413, "body_too_large"},
		{"/auth/refresh", `{"refresh_token":"` + strings.Repeat("a", 9<<10) + `"}`, "application/json", 400, "invalid_refresh_token"},
		{"/auth/refresh", `{"refresh_token":"eyJnot.a.session"}`, "application/json", 401, "invalid_grant"},
		{"/auth/logout", `{"refresh_token":["x"]}`, "application/json", 400, "invalid_field_type"},
		{"/auth/logout", `refresh_token=x`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
		{"/auth/logout", `{"refresh_token":"x"}`, "application/json", 204, ""},
	}
	for _, c := range cases {
		t.Run(c.path+" "+truncateName(c.body), func(t *testing.T) {
			hdr := map[string]string{}
			if c.ctype != "" {
				hdr["Content-Type"] = c.ctype
			}
			r := serve(e.public, http.MethodPost, c.path, strings.NewReader(c.body), hdr)
			if r.status != c.status || (c.code != "" && r.code() != c.code) {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, c.status, c.code)
			}
		})
	}
	for _, p := range []string{"/auth/guest-login", "/auth/refresh", "/auth/logout"} {
		if r := serve(e.public, http.MethodGet, p, nil, nil); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("GET %s: %d", p, r.status)
		}
	}
}

func truncateName(s string) string {
	if len(s) > 24 {
		return s[:24]
	}
	return s
}

func TestGuestRoutesAnswer503WhenDisabled(t *testing.T) {
	h := newHarness(t, options{})
	for _, p := range []string{"/auth/guest-login", "/auth/refresh", "/auth/logout"} {
		if r := serve(h.public, http.MethodPost, p, nil, nil); r.status != 503 || r.code() != "guest_login_disabled" {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
}

func TestGuestTokensArePublicRoutesWithoutAuth(t *testing.T) {
	// A bearer token or forged identity headers change nothing on guest
	// login: it never reads identity.
	e := newGuestEnv(t, guestOpts{})
	r := e.post("/auth/guest-login", "", "192.0.2.1:4000", map[string]string{"Authorization": "Bearer garbage", "X-User-ID": "admin"})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestNoSecretsInGuestSessionLogs(t *testing.T) {
	e := newGuestEnv(t, guestOpts{})
	const ip = "192.0.2.1:4000"
	a := e.login(t, ip)
	b := e.login(t, ip)
	r := e.post("/auth/refresh", session(a.RefreshToken), ip, nil)
	var next server.TokenResponse
	r.json(t, &next)
	e.post("/auth/refresh", session(a.RefreshToken), ip, nil) // refused
	e.post("/auth/logout", session(b.RefreshToken), ip, nil)
	e.post("/auth/logout", session(next.RefreshToken), ip, nil)
	e.kc.Fail(kctest.OpPassword, 500) // a failed login, the guest deleted
	e.post("/auth/guest-login", "", ip, nil)
	e.kc.Fail(kctest.OpPassword, 0)
	e.kc.Fail(kctest.OpRefresh, 503)
	e.post("/auth/refresh", session(next.RefreshToken), ip, nil)

	logs := e.logs.String()
	if !strings.Contains(logs, `"level":"debug"`) || !strings.Contains(logs, "guest created") {
		t.Fatalf("logs not captured: %s", logs)
	}
	secrets := append(e.kc.Secrets(), a.AccessToken, a.RefreshToken, b.AccessToken, b.RefreshToken, next.AccessToken, next.RefreshToken)
	for i, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("secret #%d (%d chars) appears in the logs", i, len(s))
		}
	}
	if strings.Contains(logs, kctest.LeakMarker) {
		t.Error("Keycloak's error body is logged")
	}
}

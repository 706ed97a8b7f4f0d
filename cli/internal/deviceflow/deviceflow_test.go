package deviceflow

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKC is an httptest stand-in for Keycloak's device and token endpoints:
// the token endpoint answers from a script, one answer per poll.
type fakeKC struct {
	srv *httptest.Server

	mu      sync.Mutex
	answers []answer // token endpoint, in order; the last one repeats
	polls   []url.Values
	revoked []url.Values
	auth    answer
}

type answer struct {
	status int
	body   string
}

func newFake(t *testing.T, answers ...answer) *fakeKC {
	f := &fakeKC{answers: answers, auth: answer{200, `{"device_code":"dc-secret-123","user_code":"ABCD-EFGH",
		"verification_uri":"http://kc.test/realms/jan/device","verification_uri_complete":"http://kc.test/realms/jan/device?user_code=ABCD-EFGH",
		"expires_in":600,"interval":5}`}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKC) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	var a answer
	switch r.URL.Path {
	case "/device":
		a = f.auth
	case "/token":
		f.polls = append(f.polls, r.PostForm)
		a = f.answers[0]
		if len(f.answers) > 1 {
			f.answers = f.answers[1:]
		}
	case "/revoke":
		f.revoked = append(f.revoked, r.PostForm)
		a = answer{200, ""}
	case "/redirect":
		http.Redirect(w, r, "http://evil.test/steal", http.StatusTemporaryRedirect)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (f *fakeKC) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.polls)
}

// clock is a fake clock advanced by the fake sleep, which records waits.
type clock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return nil
}

func (f *fakeKC) client(c *clock) *Client {
	return &Client{
		HTTP: NewHTTPClient(5 * time.Second), ClientID: "jan-cli",
		Provider: Provider{
			Issuer: f.srv.URL + "/realms/jan", DeviceEndpoint: f.srv.URL + "/device",
			TokenEndpoint: f.srv.URL + "/token", RevocationEndpoint: f.srv.URL + "/revoke", JWKSURI: f.srv.URL + "/certs",
		},
		Now: c.Now, Sleep: c.Sleep,
	}
}

const okToken = `{"access_token":"at.secret.value","refresh_token":"rt-secret","token_type":"Bearer","expires_in":300,"refresh_expires_in":1800,"scope":"profile email"}`

func pending() answer {
	return answer{400, `{"error":"authorization_pending","error_description":"The authorization request is still pending"}`}
}
func slowDown() answer { return answer{400, `{"error":"slow_down"}`} }

func secs(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, s := range n {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

func TestDeviceFlowPollsAtTheServersIntervalUntilApproved(t *testing.T) {
	f := newFake(t, pending(), pending(), answer{200, okToken})
	c := &clock{now: time.Unix(1e9, 0)}
	cl := f.client(c)
	a, err := cl.Authorize(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if a.UserCode != "ABCD-EFGH" || a.Interval != 5*time.Second || a.ExpiresIn != 10*time.Minute ||
		a.VerificationURIComplete == "" || a.DeviceCode != "dc-secret-123" {
		t.Fatalf("authorization: %v", a)
	}
	if strings.Contains(a.String()+a.GoString(), "dc-secret") {
		t.Fatal("Authorization.String prints the device code")
	}
	tok, err := cl.Poll(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at.secret.value" || tok.RefreshToken != "rt-secret" || tok.ExpiresIn != 300*time.Second ||
		tok.RefreshExpiresIn != 30*time.Minute || tok.Scope != "profile email" {
		t.Fatalf("token: %v", tok)
	}
	if s := tok.String() + tok.GoString(); strings.Contains(s, "secret") {
		t.Fatalf("Token.String prints a token: %s", s)
	}
	if !slices.Equal(c.waits, secs(5, 5, 5)) {
		t.Errorf("waits %v, want 5s before each of the 3 polls", c.waits)
	}
	p := f.polls[0]
	if p.Get("grant_type") != GrantDeviceCode || p.Get("device_code") != "dc-secret-123" || p.Get("client_id") != "jan-cli" {
		t.Errorf("poll form: %v", p)
	}
}

func TestDeviceFlowPollOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		answers []answer
		waits   []time.Duration
		want    error  // errors.Is
		wantMsg string // substring of the error
	}{
		{"slow_down adds 5 s each time (RFC 8628 §3.5)", []answer{pending(), slowDown(), slowDown(), pending(), {200, okToken}}, secs(5, 5, 10, 15, 15), nil, ""},
		{"expired_token", []answer{pending(), {400, `{"error":"expired_token"}`}}, secs(5, 5), ErrExpired, "expired_token"},
		{"access_denied", []answer{{400, `{"error":"access_denied"}`}}, secs(5), ErrAccessDenied, "access_denied"},
		{"other OAuth error ends it", []answer{{401, `{"error":"invalid_client"}`}}, secs(5), nil, "invalid_client"},
		{"error without a code", []answer{{400, `<html>bad</html>`}}, secs(5), nil, "answered 400"},
		{"transient 503 is retried with a doubled interval", []answer{{503, ``}, {502, `x`}, {200, okToken}}, secs(5, 10, 20), nil, ""},
		{"5 transient failures in a row end it", []answer{{503, ``}}, secs(5, 10, 20, 40, 80), nil, "5 failures in a row"},
		{"malformed 200", []answer{{200, `{"access_token":42,"token_type":"Bearer"}`}}, secs(5), ErrMalformed, "access_token has the wrong type"},
		{"200 that is not JSON", []answer{{200, `<html>login</html>`}}, secs(5), ErrMalformed, "not a JSON object"},
		{"token_type neither Bearer nor DPoP", []answer{{200, `{"access_token":"a","token_type":"mac"}`}}, secs(5), ErrMalformed, "neither Bearer nor DPoP"},
		{"huge body", []answer{{200, `{"access_token":"` + strings.Repeat("A", MaxBody) + `","token_type":"Bearer"}`}}, secs(5), ErrMalformed, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.answers...)
			c := &clock{now: time.Unix(1e9, 0)}
			a := &Authorization{DeviceCode: "dc", Interval: 5 * time.Second, ExpiresIn: 10 * time.Minute}
			tok, err := f.client(c).Poll(t.Context(), a, nil)
			if tt.want == nil && tt.wantMsg == "" {
				if err != nil || tok == nil {
					t.Fatalf("Poll: %v", err)
				}
			} else {
				if err == nil || tok != nil {
					t.Fatalf("Poll: token %v, err nil; want an error", tok)
				}
				if tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("error %v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q lacks %q", err, tt.wantMsg)
				}
				if strings.Contains(err.Error(), "dc") && strings.Contains(err.Error(), "device_code=") {
					t.Errorf("error carries the device code: %v", err)
				}
			}
			if !slices.Equal(c.waits, tt.waits) {
				t.Errorf("waits %v, want %v", c.waits, tt.waits)
			}
		})
	}
}

func TestDeviceFlowHonoursExpiresIn(t *testing.T) {
	f := newFake(t, pending())
	c := &clock{now: time.Unix(1e9, 0)}
	a := &Authorization{DeviceCode: "dc", Interval: 5 * time.Second, ExpiresIn: 12 * time.Second}
	var told []time.Duration
	_, err := f.client(c).Poll(t.Context(), a, func(wait, remaining time.Duration) { told = append(told, remaining) })
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("Poll: %v, want ErrExpired", err)
	}
	// polls at 5 s, 10 s and 12 s (the wait is cut to the deadline), then stops.
	if !slices.Equal(c.waits, secs(5, 5, 2)) || f.pollCount() != 3 {
		t.Errorf("waits %v, %d polls; want 5s,5s,2s and 3 polls", c.waits, f.pollCount())
	}
	if !slices.Equal(told, secs(12, 7, 2)) {
		t.Errorf("remaining told to the spinner %v", told)
	}
}

func TestDeviceFlowStopsWhenCancelled(t *testing.T) {
	f := newFake(t, pending())
	ctx, cancel := context.WithCancel(t.Context())
	c := &clock{now: time.Unix(1e9, 0)}
	cl := f.client(c)
	cl.Sleep = func(ctx context.Context, d time.Duration) error {
		if f.pollCount() == 2 {
			cancel()
		}
		return c.Sleep(ctx, d)
	}
	_, err := cl.Poll(ctx, &Authorization{DeviceCode: "dc", Interval: time.Second, ExpiresIn: time.Minute}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Poll: %v, want context.Canceled", err)
	}
}

func TestDeviceFlowRealSleepIsBounded(t *testing.T) {
	// No injected sleep: the real timer, with the minimum interval.
	f := newFake(t, pending(), answer{200, okToken})
	cl := f.client(&clock{})
	cl.Now, cl.Sleep = nil, nil
	start := time.Now()
	if _, err := cl.Poll(t.Context(), &Authorization{DeviceCode: "dc", Interval: 0, ExpiresIn: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*MinInterval || d > 10*time.Second {
		t.Errorf("two polls took %s: the interval is not clamped to %s", d, MinInterval)
	}
}

func TestDecodeAuthorizationBoundsTheServersNumbers(t *testing.T) {
	const base = `"device_code":"d","user_code":"U-1","verification_uri":"https://kc.test/device"`
	tests := []struct {
		name               string
		extra              string
		interval, expires  time.Duration
		complete, errorMsg string
	}{
		{"defaults", ``, DefaultInterval, DefaultExpiresIn, "", ""},
		{"server values", `,"interval":7,"expires_in":300`, 7 * time.Second, 5 * time.Minute, "", ""},
		{"interval 0 → minimum", `,"interval":0`, MinInterval, DefaultExpiresIn, "", ""},
		{"negative interval → minimum", `,"interval":-5`, MinInterval, DefaultExpiresIn, "", ""},
		{"huge interval → maximum", `,"interval":9223372036854775807`, MaxInterval, DefaultExpiresIn, "", ""},
		{"huge expires_in → maximum", `,"expires_in":99999999`, DefaultInterval, MaxExpiresIn, "", ""},
		{"expires_in 0", `,"expires_in":0`, 0, 0, "", "not positive"},
		{"interval as string", `,"interval":"5"`, 0, 0, "", "field interval has the wrong type"},
		{"interval as float", `,"interval":5.5`, 0, 0, "", "field interval has the wrong type"},
		{"interval overflowing int64", `,"interval":1e30`, 0, 0, "", "wrong type"},
		{"verification_uri_complete kept", `,"verification_uri_complete":"https://kc.test/device?user_code=U-1"`, DefaultInterval, DefaultExpiresIn, "https://kc.test/device?user_code=U-1", ""},
		{"javascript: URL refused", `,"verification_uri_complete":"javascript:alert(1)"`, 0, 0, "", "verification_uri_complete"},
		{"terminal escape in URL refused", `,"verification_uri_complete":"https://kc.test/\u001b[2J"`, 0, 0, "", "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := DecodeAuthorization(200, []byte(`{`+base+tt.extra+`}`))
			if tt.errorMsg != "" {
				if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.errorMsg) {
					t.Fatalf("err %v, want ErrMalformed with %q", err, tt.errorMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Interval != tt.interval || a.ExpiresIn != tt.expires || a.VerificationURIComplete != tt.complete {
				t.Errorf("got interval %s expires %s complete %q", a.Interval, a.ExpiresIn, a.VerificationURIComplete)
			}
		})
	}
	// Required fields and the user code shown to a person.
	for name, body := range map[string]string{
		"no device_code":     `{"user_code":"U","verification_uri":"https://kc.test/d"}`,
		"no user_code":       `{"device_code":"d","verification_uri":"https://kc.test/d"}`,
		"no verification":    `{"device_code":"d","user_code":"U"}`,
		"user_code escape":   `{"device_code":"d","user_code":"\u001b]0;pwn\u0007","verification_uri":"https://kc.test/d"}`,
		"user_code too long": `{"device_code":"d","user_code":"` + strings.Repeat("U", 65) + `","verification_uri":"https://kc.test/d"}`,
		"null":               `null`,
		"array":              `[]`,
		"trailing data":      `{"device_code":"d","user_code":"U","verification_uri":"https://kc.test/d"} {}`,
	} {
		if _, err := DecodeAuthorization(200, []byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	var oe *OAuthError
	if _, err := DecodeAuthorization(401, []byte(`{"error":"unauthorized_client"}`)); !errors.As(err, &oe) || oe.Code != "unauthorized_client" {
		t.Errorf("401: %v", err)
	}
	if _, err := DecodeAuthorization(400, []byte(`{"error":"bad\"code"}`)); !errors.As(err, &oe) || oe.Code != "" {
		t.Errorf("an error code outside RFC 6749's charset must not be kept: %v", err)
	}
}

func TestDiscovery(t *testing.T) {
	doc := func(base string) string {
		return `{"issuer":"` + base + `/realms/jan","device_authorization_endpoint":"` + base + `/realms/jan/protocol/openid-connect/auth/device",
"token_endpoint":"` + base + `/realms/jan/protocol/openid-connect/token","revocation_endpoint":"` + base + `/realms/jan/protocol/openid-connect/revoke",
"jwks_uri":"` + base + `/realms/jan/protocol/openid-connect/certs"}`
	}
	var body string
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/realms/jan/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	hc := NewHTTPClient(5 * time.Second)

	body = doc(srv.URL)
	p, err := Discover(t.Context(), hc, srv.URL, "jan", false)
	if err != nil || p.Issuer != srv.URL+"/realms/jan" || p.RevocationEndpoint == "" {
		t.Fatalf("discovery: %+v %v", p, err)
	}
	if _, err := Discover(t.Context(), hc, srv.URL, "other", false); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown realm: %v", err)
	}
	if _, err := Discover(t.Context(), hc, srv.URL, "../admin", false); err == nil {
		t.Error("a realm with a slash was accepted")
	}
	body = doc("http://keycloak.example.com")
	if _, err := Discover(t.Context(), hc, srv.URL, "jan", false); !errors.Is(err, ErrInsecureURL) {
		t.Errorf("plain http endpoints on a public host: %v, want ErrInsecureURL", err)
	}
	if _, err := Discover(t.Context(), hc, srv.URL, "jan", true); err != nil {
		t.Errorf("with allowHTTP: %v", err)
	}
	body = strings.Replace(doc(srv.URL), `"device_authorization_endpoint"`, `"x"`, 1)
	if _, err := Discover(t.Context(), hc, srv.URL, "jan", false); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "device_authorization_endpoint missing") {
		t.Errorf("no device endpoint: %v", err)
	}
	body, status = `{"issuer":1}`, 200
	if _, err := Discover(t.Context(), hc, srv.URL, "jan", false); !errors.Is(err, ErrMalformed) {
		t.Errorf("wrong type: %v", err)
	}
	body, status = doc(srv.URL), 500
	if _, err := Discover(t.Context(), hc, srv.URL, "jan", false); !errors.Is(err, ErrMalformed) {
		t.Errorf("500: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFake(t)
	cl := f.client(&clock{})
	cl.Provider.TokenEndpoint = f.srv.URL + "/redirect"
	_, err := cl.Refresh(t.Context(), "rt-secret")
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Refresh through a redirect: %v", err)
	}
	if strings.Contains(err.Error(), "rt-secret") {
		t.Fatal("the error carries the refresh token")
	}
}

func TestRefreshAndRevoke(t *testing.T) {
	f := newFake(t, answer{200, okToken}, answer{400, `{"error":"invalid_grant","error_description":"Token is not active"}`})
	cl := f.client(&clock{})
	tok, err := cl.Refresh(t.Context(), "rt-1")
	if err != nil || tok.AccessToken != "at.secret.value" {
		t.Fatalf("refresh: %v %v", tok, err)
	}
	if p := f.polls[0]; p.Get("grant_type") != "refresh_token" || p.Get("refresh_token") != "rt-1" || p.Get("client_id") != "jan-cli" {
		t.Errorf("refresh form %v", p)
	}
	if _, err := cl.Refresh(t.Context(), "rt-2"); CodeOf(err) != "invalid_grant" {
		t.Errorf("refresh with a dead token: %v, want invalid_grant", err)
	}
	if err := cl.Revoke(t.Context(), "rt-1", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	if r := f.revoked[0]; r.Get("token") != "rt-1" || r.Get("token_type_hint") != "refresh_token" || r.Get("client_id") != "jan-cli" {
		t.Errorf("revoke form %v", r)
	}
	cl.Provider.RevocationEndpoint = ""
	if err := cl.Revoke(t.Context(), "rt-1", "refresh_token"); err == nil {
		t.Error("revoke without an endpoint succeeded")
	}
}

func TestCheckURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://sso.example.com":            true,
		"http://127.0.0.1:8080":              true,
		"http://localhost:8000/":             true,
		"http://[::1]:9000":                  true,
		"http://sso.example.com":             false,
		"ftp://sso.example.com":              false,
		"https://user:pw@sso.example.com":    false,
		"https://sso.example.com/#frag":      false,
		"sso.example.com":                    false,
		"":                                   false,
		"https://":                           false,
		"http://127.0.0.1.evil.example.com/": false,
	} {
		_, err := CheckURL(raw, false)
		if (err == nil) != ok {
			t.Errorf("CheckURL(%q): %v, want ok=%t", raw, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("CheckURL(%q) echoes credentials: %v", raw, err)
		}
	}
}

package devgw

// The repository's kong/kong.yml served end to end: the dev gateway in
// front of recording stand-ins for llm-api (public and internal ports) and
// Keycloak, a fake realm (jwttest) for JWTs, a real edge signing key, and a
// Redis address nothing listens on (the rate limiter's on_redis_error:
// local, as configured). kong.yml's container addresses and secret paths
// are rewritten with Options.Rewrites, exactly as `devgateway --rewrite`
// does.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

const kongYML = "../../../kong/kong.yml"

// stderrLog is where the process's stderr goes during the tests (the
// plugins log there, as under Kong), so the secrets test can read it.
var stderrLog string

func TestMain(m *testing.M) {
	f, err := os.CreateTemp("", "devgw-stderr-*.log")
	if err != nil {
		os.Exit(m.Run())
	}
	stderrLog = f.Name()
	orig := os.Stderr
	os.Stderr = f // before any goroutine exists; never restored (background goroutines may still log)
	code := m.Run()
	if _, err := f.Seek(0, io.SeekStart); err == nil {
		_, _ = io.Copy(orig, f) // nothing the plugins logged is lost
	}
	_ = os.Remove(stderrLog)
	os.Exit(code)
}

type stack struct {
	gw       *httptest.Server
	llm      *upstream
	keycloak *upstream
	idp      *jwttest.IdP
	verifier *edgeid.Verifier
	key      apikey.Key
	token    string // internal token
	keyPEM   string
	logs     *logBuffer
	release  chan struct{} // ends the SSE stream
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{idp: jwttest.New(t), token: "internal-token-f3b1c9d7e5a2c4b6d8e0f1a3", logs: &logBuffer{}, release: make(chan struct{})}
	dir := t.TempDir()
	keyFile, jwksFile := filepath.Join(dir, "edge_identity.pem"), filepath.Join(dir, "edge_identity.jwks.json")
	if err := edgeid.WriteKeyFiles(keyFile, jwksFile); err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(keyFile)
	s.keyPEM = string(pem)
	if err := os.WriteFile(filepath.Join(dir, "internal_token"), []byte(s.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.verifier, err = edgeid.LoadVerifier(jwksFile, "llm-api"); err != nil {
		t.Fatal(err)
	}
	if s.key, err = apikey.Generate("live"); err != nil {
		t.Fatal(err)
	}

	s.llm = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"delta\":\"first\"}\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-s.release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	internal := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Key string }
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		_ = json.Unmarshal(b, &req)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path != "/internal/api-keys/validate" || r.Header.Get("X-Internal-Token") != s.token:
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":{"code":"internal_auth_failed"}}`)
		case req.Key == s.key.Secret():
			fmt.Fprintf(w, `{"subject":"key-owner","username":"keyuser","roles":["user"],"key_id":%q}`, s.key.KID())
		default:
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":{"code":"key_unknown"}}`)
		}
	})
	s.keycloak = newUpstream(t, nil)
	other := newUpstream(t, nil)

	c, err := kongconf.Load(kongYML)
	if err != nil {
		t.Fatal(err)
	}
	l := zerolog.New(s.logs)
	g, err := New(Options{
		Config: c,
		Upstreams: map[string]string{
			"llm-api": s.llm.URL, "media-api": other.URL, "mcp-tools": other.URL, "keycloak": s.keycloak.URL,
		},
		Rewrites: []Rewrite{
			{"http://localhost:8000/realms/jan", s.idp.Issuer},
			{"http://keycloak:8080/realms/jan/protocol/openid-connect/certs", s.idp.JWKSURL()},
			{"http://llm-api:8081", internal.URL},
			{"/etc/kong/secrets/redis_password", ""}, // no password: the option is dropped
			{"/etc/kong/secrets/", dir + "/"},
			{"redis:6379", "127.0.0.1:1"}, // nothing listens: on_redis_error local
		},
		MaxBodyBytes: DefaultMaxBodyBytes,
		Logger:       &l,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	if n := g.Warm(); n != 0 {
		t.Fatalf("%d plugin instances misconfigured:\n%s", n, s.logs)
	}
	s.gw = httptest.NewServer(g)
	t.Cleanup(s.gw.Close)
	return s
}

func (s *stack) do(t *testing.T, method, path string, h http.Header, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.gw.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// identityHeaders returns the upstream's headers whose canonical name
// (lower case, '_' as '-') is name.
func identityHeaders(h http.Header, name string) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		if headername.EqualCanonical(k, name) {
			out[k] = v
		}
	}
	return out
}

func TestKongYMLThroughTheDevGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	s := startStack(t)
	jwt := s.idp.Token(t, "user-123", nil)
	spoof := http.Header{
		"X-User-Id":       {"victim"},
		"X_auth_method":   {"apikey"},
		"X-User-Subject":  {"victim"},
		"X-Edge-Identity": {"forged"},
		"X-Request-Id":    {"rid-it-1"},
	}
	var assertions []string

	t.Run("a JWT reaches llm-api with the edge's identity only", func(t *testing.T) {
		h := spoof.Clone()
		h.Set("Authorization", "Bearer "+jwt)
		resp := s.do(t, "GET", "/v1/models?limit=5", h, nil)
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if resp.Header.Get("X-Request-ID") != "rid-it-1" || resp.Header.Get("RateLimit-Limit") == "" {
			t.Fatalf("response headers: %v", resp.Header)
		}
		got := s.llm.last(t)
		if got.Path != "/v1/models" || got.Query != "limit=5" {
			t.Fatalf("upstream path %q query %q", got.Path, got.Query)
		}
		if u := identityHeaders(got.Header, "x-user-id"); len(u) != 1 || u["X-User-Id"][0] != "user-123" {
			t.Fatalf("X-User-ID upstream: %v", u)
		}
		if a := identityHeaders(got.Header, "x-auth-method"); len(a) != 1 || a["X-Auth-Method"][0] != "jwt" {
			t.Fatalf("X-Auth-Method upstream: %v (a spoofed X_Auth_Method must not arrive)", a)
		}
		if v := got.Header.Get("X-User-Subject"); v != "" {
			t.Fatalf("spoofed X-User-Subject reached the upstream: %q", v)
		}
		assertion := got.Header.Get("X-Edge-Identity")
		assertions = append(assertions, assertion)
		id, err := s.verifier.Verify(assertion, "GET", "/v1/models")
		if err != nil || id.Subject != "user-123" {
			t.Fatalf("X-Edge-Identity: %v %+v", err, id)
		}
	})

	t.Run("no credential is 401", func(t *testing.T) {
		before := s.llm.count()
		resp := s.do(t, "GET", "/v1/models", spoof, nil)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		if s.llm.count() != before {
			t.Fatal("an anonymous request reached llm-api")
		}
	})

	t.Run("an invalid JWT is 401, never anonymous", func(t *testing.T) {
		resp := s.do(t, "GET", "/v1/models", http.Header{"Authorization": {"Bearer " + jwt[:len(jwt)-4] + "AAAA"}}, nil)
		if resp.StatusCode != 401 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})

	t.Run("an API key reaches llm-api as the key's owner", func(t *testing.T) {
		h := spoof.Clone()
		h.Set("Authorization", "Bearer "+s.key.Secret())
		resp := s.do(t, "GET", "/v1/models", h, nil)
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		got := s.llm.last(t)
		if got.Header.Get("X-User-ID") != "key-owner" || got.Header.Get("X-Auth-Method") != "apikey" ||
			got.Header.Get("X-API-Key-ID") != s.key.KID() {
			t.Fatalf("upstream identity headers: %v", got.Header)
		}
		for k, v := range got.Header {
			if strings.Contains(strings.Join(v, " "), s.key.Secret()) {
				t.Fatalf("the key reached the upstream in %s", k)
			}
		}
		assertion := got.Header.Get("X-Edge-Identity")
		assertions = append(assertions, assertion)
		if id, err := s.verifier.Verify(assertion, "GET", "/v1/models"); err != nil || id.Subject != "key-owner" {
			t.Fatalf("X-Edge-Identity: %v %+v", err, id)
		}
	})

	t.Run("an unknown API key is 401", func(t *testing.T) {
		other, _ := apikey.Generate("live")
		resp := s.do(t, "GET", "/v1/models", http.Header{"X-API-Key": {other.Secret()}}, nil)
		if resp.StatusCode != 401 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})

	t.Run("SSE streams through", func(t *testing.T) {
		resp := s.do(t, "POST", "/v1/chat/completions",
			http.Header{"Authorization": {"Bearer " + jwt}, "Content-Type": {"application/json"}},
			strings.NewReader(`{"model":"m","stream":true}`))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		first := make(chan string, 1)
		br := bufio.NewReader(resp.Body)
		go func() {
			line, _ := br.ReadString('\n')
			first <- line
		}()
		select {
		case line := <-first:
			if line != "data: {\"delta\":\"first\"}\n" {
				t.Fatalf("first line %q", line)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the first event did not arrive while the upstream was still streaming")
		}
		close(s.release)
		rest, _ := io.ReadAll(br)
		if !strings.Contains(string(rest), "data: [DONE]") {
			t.Fatalf("rest of the stream: %q", rest)
		}
		got := s.llm.last(t)
		assertions = append(assertions, got.Header.Get("X-Edge-Identity"))
		if _, err := s.verifier.Verify(got.Header.Get("X-Edge-Identity"), "POST", "/v1/chat/completions"); err != nil {
			t.Fatalf("X-Edge-Identity of the POST: %v", err)
		}
	})

	t.Run("admin, internal, master realm and metrics are never routed", func(t *testing.T) {
		before := s.llm.count() + s.keycloak.count()
		for _, p := range []string{"/admin", "/admin/master/console/", "/internal/api-keys/validate", "/realms/master/protocol/openid-connect/token",
			"/metrics", "/v1/models/../../admin", "/v1/%2e%2e/internal/x", "//admin"} {
			resp := s.do(t, "GET", p, http.Header{"Authorization": {"Bearer " + jwt}}, nil)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 404 || !strings.Contains(string(b), `"code":"no_route"`) {
				t.Errorf("%s: %d %s", p, resp.StatusCode, b)
			}
		}
		if s.llm.count()+s.keycloak.count() != before {
			t.Fatal("a forbidden path reached an upstream")
		}
	})

	t.Run("Keycloak's public endpoints pass with the client's Host", func(t *testing.T) {
		resp := s.do(t, "GET", "/realms/jan/.well-known/openid-configuration", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		if got := s.keycloak.last(t); got.Host != strings.TrimPrefix(s.gw.URL, "http://") || got.Path != "/realms/jan/.well-known/openid-configuration" {
			t.Fatalf("keycloak got host %q path %q (preserve_host)", got.Host, got.Path)
		}
	})

	t.Run("a browser preflight is answered at the edge", func(t *testing.T) {
		resp := s.do(t, "OPTIONS", "/v1/chat/completions", http.Header{
			"Origin": {"http://localhost:3000"}, "Access-Control-Request-Method": {"POST"},
		}, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("no secret in any log", func(t *testing.T) {
		captured := s.logs.String()
		if stderrLog != "" {
			b, err := os.ReadFile(stderrLog)
			if err != nil {
				t.Fatal(err)
			}
			captured += string(b)
		}
		if len(accessLines(t, s.logs.String())) < 10 {
			t.Fatalf("the access log is missing lines:\n%s", s.logs)
		}
		pemBody := strings.Split(s.keyPEM, "\n")[1]
		secrets := map[string]string{
			"JWT":            jwt,
			"JWT signature":  jwt[strings.LastIndexByte(jwt, '.')+1:],
			"API key":        s.key.Secret(),
			"internal token": s.token,
			"signing key":    pemBody,
		}
		for i, a := range assertions {
			if a != "" {
				secrets[fmt.Sprintf("edge assertion %d", i)] = a
			}
		}
		for what, secret := range secrets {
			if strings.Contains(captured, secret) {
				t.Errorf("the %s appears in the logs", what)
			}
		}
		if strings.Contains(captured, "limit=5") {
			t.Error("a query string appears in the logs")
		}
	})
}

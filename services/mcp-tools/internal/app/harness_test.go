package app_test

import (
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/pkg/ssrf"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/app"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSandbox stands in for SandboxFusion's /run_code.
type fakeSandbox struct {
	srv   *httptest.Server
	mu    sync.Mutex
	codes []string
	stall time.Duration
	token string // required Bearer token, if set
}

func newFakeSandbox(t *testing.T) *fakeSandbox {
	f := &fakeSandbox{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/run_code" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		want := f.token
		f.mu.Unlock()
		if want != "" && r.Header.Get("Authorization") != "Bearer "+want {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var req struct {
			Code     string `json:"code"`
			Language string `json:"language"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Language != "python" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.codes = append(f.codes, req.Code)
		stall := f.stall
		f.mu.Unlock()
		if stall > 0 {
			select {
			case <-time.After(stall):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "Success", "message": "",
			"run_result": map[string]any{"status": "Finished", "execution_time": 0.01, "return_code": 0,
				"stdout": "ran " + req.Code + "\n", "stderr": ""},
		})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSandbox) Runs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.codes...)
}

type harness struct {
	t       *testing.T
	app     *app.App
	srv     *httptest.Server
	idp     *jwttest.IdP
	signer  *edgeid.Signer
	clock   *clock
	sandbox *fakeSandbox
	logs    *testenv.Buffer
}

type option func(env map[string]string, deps *app.Deps)

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	h := &harness{t: t, idp: jwttest.New(t), clock: &clock{t: time.Now()}, sandbox: newFakeSandbox(t), logs: &testenv.Buffer{}}
	dir := t.TempDir()
	keyPath, jwksPath := filepath.Join(dir, "edge.key"), filepath.Join(dir, "edge.jwks")
	if err := edgeid.WriteKeyFiles(keyPath, jwksPath); err != nil {
		t.Fatal(err)
	}
	var err error
	if h.signer, err = edgeid.LoadSigner(keyPath); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"EDGE_IDENTITY_JWKS_FILE": jwksPath,
		"AUTH_ACCEPT_JWT":         "true",
		"AUTH_ISSUER":             h.idp.Issuer,
		"AUTH_JWKS_URL":           h.idp.JWKSURL(),
		"SANDBOX_URL":             h.sandbox.srv.URL,
		"LOG_LEVEL":               "debug",
	}
	pki := mtlstest.New(t, "test CA") // the public listener's mTLS (served here by httptest)
	for k, v := range mtlstest.ServiceEnv(t, pki, pki, "mcp-tools") {
		env[k] = v
	}
	verifier, err := jwtauth.New(jwtauth.Config{
		Issuers:   []jwtauth.Issuer{{Issuer: h.idp.Issuer, JWKSURL: h.idp.JWKSURL()}},
		Audiences: []string{"jan-api"}, AllowedAZP: []string{"jan-cli", "jan-web", "guest-login"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(verifier.Close)
	deps := app.Deps{Verifier: verifier, Now: h.clock.Now, FetchOptions: ssrf.Options{
		// the "public" test site listens on 127.0.0.2; 127.0.0.1 stays refused
		InsecureAllowPrefixes: []netip.Prefix{netip.MustParsePrefix(publicTestAddr + "/32")},
		Resolver:              fakeResolver{"public.test": publicTestAddr, "loopback.test": "127.0.0.1", "localhost": "127.0.0.1", "metadata.test": "169.254.169.254"},
	}}
	for _, o := range opts {
		o(env, &deps)
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(redact.Writer(h.logs)).Level(zerolog.DebugLevel)
	if h.app, err = app.New(cfg, log, deps); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.app.Close)
	h.srv = httptest.NewServer(h.app.Public)
	t.Cleanup(h.srv.Close)
	return h
}

func withEnv(k, v string) option {
	return func(env map[string]string, _ *app.Deps) {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
}

// roundTripper adds a credential to every request.
type roundTripper func(*http.Request) error

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if err := f(r); err != nil {
		return nil, err
	}
	return http.DefaultTransport.RoundTrip(r)
}

// edgeClientIP is the client address the test edge signs into its
// assertions (claim cip), as Kong's kong.client.get_forwarded_ip.
const edgeClientIP = "203.0.113.50"

// edgeClient sends what the edge would: an X-Edge-Identity assertion for
// id bound to each request's method and path, with the client address
// edgeClientIP — and an X-Forwarded-For naming another one, which the
// service must not believe.
func (h *harness) edgeClient(id identity.Identity) *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) error {
		a, err := h.signer.SignClient(&id, "mcp-tools", r.Method, r.URL.Path, netip.MustParseAddr(edgeClientIP), h.clock.Now())
		if err != nil {
			return err
		}
		r.Header.Set(identity.HeaderEdgeIdentity, a)
		r.Header.Set("X-Forwarded-For", "198.18.0.9")
		return nil
	})}
}

// jwtClient sends a Keycloak-shaped access token.
func (h *harness) jwtClient(token string) *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	})}
}

// userToken is a JWT for sub with realm roles.
func (h *harness) userToken(sub string, roles ...string) string {
	return h.idp.Token(h.t, sub, map[string]any{"realm_access": map[string]any{"roles": roles}})
}

func user(sub string, roles ...string) identity.Identity {
	return identity.Identity{Subject: sub, Username: "name-" + sub, RealmRoles: roles, AuthMethod: identity.MethodJWT}
}

// connect opens a real MCP client session (the Go SDK's client over
// streamable HTTP) with hc's credential.
func (h *harness) connect(hc *http.Client) (*mcp.ClientSession, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "edgeguard-test", Version: "1.0.0"}, nil)
	return c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: h.srv.URL + "/v1/mcp", HTTPClient: hc,
		MaxRetries: -1, DisableStandaloneSSE: true}, nil)
}

func (h *harness) mustConnect(hc *http.Client) *mcp.ClientSession {
	h.t.Helper()
	s, err := h.connect(hc)
	if err != nil {
		h.t.Fatalf("connect: %v", err)
	}
	h.t.Cleanup(func() { _ = s.Close() })
	return s
}

func toolNames(t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

func call(t *testing.T, s *mcp.ClientSession, name string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	var m map[string]any
	if len(res.Content) == 1 {
		if tc, ok := res.Content[0].(*mcp.TextContent); ok {
			_ = json.Unmarshal([]byte(tc.Text), &m)
		}
	}
	return res, m
}

// do sends one HTTP request with hc.
func (h *harness) do(hc *http.Client, method, path, body string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return resp, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// publicTestAddr stands for a public address in tests: the only one the
// guarded client is told to allow besides the real public ranges.
const publicTestAddr = "127.0.0.2"

// fakeResolver answers fixed names.
type fakeResolver map[string]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// publicSite serves h on 127.0.0.2 (the test's "public" address).
func publicSite(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", publicTestAddr+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", publicTestAddr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

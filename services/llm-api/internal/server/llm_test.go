package server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmproxy"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmstub"
	"github.com/rs/zerolog"
)

const upstreamKey = "upstream-key-0123456789"

// llmEnv is the public router with the model API proxied to an in-process
// llmstub.
type llmEnv struct {
	*harness
	stub *llmstub.Stub
	up   *httptest.Server
}

func newProxy(t testing.TB, upstream string, mod func(*llmproxy.Config)) *llmproxy.Proxy {
	t.Helper()
	cfg := llmproxy.Config{UpstreamURL: upstream + "/v1", APIKey: []byte(upstreamKey), Logger: zerolog.Nop()}
	if mod != nil {
		mod(&cfg)
	}
	p, err := llmproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newLLMEnv(t *testing.T, mod func(*llmproxy.Config)) *llmEnv {
	t.Helper()
	stub := &llmstub.Stub{}
	up := httptest.NewServer(stub)
	t.Cleanup(up.Close)
	return &llmEnv{harness: newHarness(t, options{llm: newProxy(t, up.URL, mod)}), stub: stub, up: up}
}

// clientCredentials are what a client sends that must never reach the model server.
var clientCredentials = map[string]string{
	"X-API-Key":                 "sk_live_client_key_must_not_leak",
	identity.HeaderEdgeIdentity: "edge.identity.assertion",
	"Cookie":                    "KEYCLOAK_SESSION=client-session",
	"X-User-ID":                 "alice",
	"Proxy-Authorization":       "Basic Y2xpZW50OnNlY3JldA==",
}

func TestModelRoutesReachTheUpstreamWithTheServiceKeyAndNoClientCredential(t *testing.T) {
	e := newLLMEnv(t, nil)
	tok := e.token("alice", "user")
	cases := []struct {
		name, method, path, body, want string
	}{
		{"models", http.MethodGet, "/v1/models", "", `"stub-model"`},
		{"chat", http.MethodPost, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `"content":"tok0 tok1 tok2`},
		{"completions", http.MethodPost, "/v1/completions", `{"model":"m","prompt":"hi"}`, `"text":"tok0 tok1 tok2`},
		{"embeddings", http.MethodPost, "/v1/embeddings", `{"model":"m","input":"hi"}`, `"embedding"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": "Bearer " + tok}
			for k, v := range clientCredentials {
				hdr[k] = v
			}
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := serve(e.public, c.method, c.path+"?token=query-secret", body, hdr)
			if r.status != 200 || !strings.Contains(string(r.body), c.want) {
				t.Fatalf("%d %s", r.status, r.body)
			}
			got := e.stub.Last()
			if got.Method != c.method || got.Path != c.path || string(got.Body) != c.body {
				t.Fatalf("upstream saw %s %s %q", got.Method, got.Path, got.Body)
			}
			if a := got.Header.Get("Authorization"); a != "Bearer "+upstreamKey {
				t.Fatalf("upstream Authorization = %q, want the service key", a)
			}
			for k := range clientCredentials {
				if v := got.Header.Values(k); len(v) > 0 {
					t.Errorf("client header %s reached the upstream: %q", k, v)
				}
			}
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, tok) || strings.Contains(v, "client") || strings.Contains(v, "query-secret") {
						t.Errorf("upstream header %s carries a client credential", k)
					}
				}
			}
			if got.Header.Get(edgehttp.HeaderRequestID) == "" {
				t.Error("request id not propagated")
			}
		})
	}
}

func TestWithoutAnUpstreamKeyNoAuthorizationIsSent(t *testing.T) {
	e := newLLMEnv(t, func(c *llmproxy.Config) { c.APIKey = nil })
	if r := e.api(http.MethodGet, "/v1/models", e.token("alice", "user"), ""); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if a := e.stub.Last().Header.Values("Authorization"); len(a) != 0 {
		t.Fatalf("Authorization sent: %q", a)
	}
}

func TestChatStreamIsDeliveredChunkByChunk(t *testing.T) {
	e := newLLMEnv(t, nil)
	e.stub.Hold = make(chan struct{})
	srv := httptest.NewServer(e.public)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+e.token("alice", "user"))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(res.Body)
	first := make(chan string, 1)
	go func() {
		// the role chunk (vLLM's first), then the first token
		for {
			line, err := br.ReadString('\n')
			if err != nil || strings.Contains(line, "tok0") {
				first <- line
				return
			}
		}
	}()
	select {
	case line := <-first:
		// the stub is still holding the rest: this chunk was flushed through
		if !strings.HasPrefix(line, "data: ") || !strings.Contains(line, "tok0") {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first chunk not delivered while the upstream holds the stream")
	}
	close(e.stub.Hold)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), "tok2") || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("rest %q", rest)
	}
}

func TestOversizedBodyIsRefusedWith413BeforeTheUpstream(t *testing.T) {
	e := newLLMEnv(t, func(c *llmproxy.Config) { c.MaxBodyBytes = 1 << 10 })
	big := `{"model":"m","prompt":"` + strings.Repeat("a", 2<<10) + `"}`
	tok := e.token("alice", "user")
	// with Content-Length
	if r := e.api(http.MethodPost, "/v1/completions", tok, big); r.status != 413 || r.code() != llmproxy.CodeBodyTooLarge {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// without (chunked): the limit holds while reading
	req := httptest.NewRequest(http.MethodPost, "/v1/completions", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	e.public.ServeHTTP(w, req)
	if w.Code != 413 {
		t.Fatalf("chunked: %d %s", w.Code, w.Body)
	}
	if n := len(e.stub.Requests()); n != 0 {
		t.Fatalf("upstream contacted %d times", n)
	}
}

func TestUpstreamFailuresAreMappedWithoutEchoingTheirBodies(t *testing.T) {
	e := newLLMEnv(t, nil)
	tok := e.token("alice", "user")
	cases := []struct {
		name   string
		model  string
		status int
		code   string
	}{
		{"a 500 becomes upstream_error", "fail-500", 502, llmproxy.CodeUpstreamError},
		{"a 503 becomes upstream_error", "fail-503", 502, llmproxy.CodeUpstreamError},
		{"a 401 (our upstream key is wrong) becomes upstream_error", "fail-401", 502, llmproxy.CodeUpstreamError},
		{"a 403 becomes upstream_error", "fail-403", 502, llmproxy.CodeUpstreamError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.api(http.MethodPost, "/v1/chat/completions", tok, `{"model":"`+c.model+`"}`)
			if r.status != c.status || r.code() != c.code || strings.Contains(string(r.body), llmstub.Secret) {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	// an OpenAI-style 4xx passes through as is (documented)
	r := e.api(http.MethodPost, "/v1/chat/completions", tok, `{"model":"fail-400"}`)
	if r.status != 400 || !strings.Contains(string(r.body), `"stub_error"`) {
		t.Fatalf("4xx pass-through: %d %s", r.status, r.body)
	}
	r = e.api(http.MethodPost, "/v1/chat/completions", tok, `{"model":"fail-429"}`)
	if r.status != 429 {
		t.Fatalf("429 pass-through: %d %s", r.status, r.body)
	}
	if strings.Contains(e.logs.String(), upstreamKey) {
		t.Fatal("the upstream key was logged")
	}
}

func TestUpstreamDownIs502Unavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	h := newHarness(t, options{llm: newProxy(t, "http://"+addr, nil)})
	r := h.api(http.MethodGet, "/v1/models", h.token("alice", "user"), "")
	if r.status != 502 || r.code() != llmproxy.CodeUpstreamUnavailable {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestStalledUpstreamIs504WithinTheTimeout(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*llmproxy.Config)
	}{
		{"total timeout", func(c *llmproxy.Config) { c.Timeout = 300 * time.Millisecond }},
		{"header timeout", func(c *llmproxy.Config) { c.Timeout = time.Minute; c.HeaderTimeout = 300 * time.Millisecond }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newLLMEnv(t, c.mod)
			start := time.Now()
			r := e.api(http.MethodPost, "/v1/chat/completions", e.token("alice", "user"), `{"model":"stall"}`)
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("took %s", el)
			}
			if r.status != 504 || r.code() != llmproxy.CodeUpstreamTimeout {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
}

func TestStreamStalledMidwayIsCutAtTheTimeout(t *testing.T) {
	e := newLLMEnv(t, func(c *llmproxy.Config) { c.Timeout = 300 * time.Millisecond })
	srv := httptest.NewServer(e.public)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"stall-stream","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+e.token("alice", "user"))
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body) // ends (with an error) when the proxy aborts
	if !strings.Contains(string(b), "tok0") || strings.Contains(string(b), "[DONE]") {
		t.Fatalf("body %q", b)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %s", el)
	}
}

func TestBadJSONIsRefusedWith400(t *testing.T) {
	e := newLLMEnv(t, nil)
	tok := e.token("alice", "user")
	for _, body := range []string{"{", "[]", `"x"`, "null", "{}{}", `{"a":1} x`} {
		r := e.api(http.MethodPost, "/v1/chat/completions", tok, body)
		if r.status != 400 || r.code() != llmproxy.CodeInvalidBody {
			t.Fatalf("%q: %d %s", body, r.status, r.body)
		}
	}
	// an empty POST body too (serve sends none)
	if r := serve(e.public, http.MethodPost, "/v1/embeddings", nil, map[string]string{"Authorization": "Bearer " + tok}); r.status != 400 {
		t.Fatalf("empty: %d %s", r.status, r.body)
	}
	if n := len(e.stub.Requests()); n != 0 {
		t.Fatalf("upstream contacted %d times", n)
	}
}

func TestModelAPIAcceptsGuestsAndAPIKeysAndRefusesTheUnauthenticated(t *testing.T) {
	stub := &llmstub.Stub{}
	up := httptest.NewServer(stub)
	t.Cleanup(up.Close)
	e := newEdgeEnvWith(t, options{llm: newProxy(t, up.URL, nil)})
	const path = "/v1/chat/completions"
	body := `{"model":"m","messages":[]}`
	keyAuth := &identity.Identity{Subject: "alice", RealmRoles: []string{"user"}, AuthMethod: identity.MethodAPIKey, APIKeyID: "kid123"}
	guest := &identity.Identity{Subject: "guest-1", RealmRoles: []string{"guest"}, Guest: true, AuthMethod: identity.MethodJWT}
	cases := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"an API-key identity", map[string]string{identity.HeaderEdgeIdentity: e.assert(t, keyAuth, "llm-api", http.MethodPost, path)}, 200},
		{"a guest", map[string]string{identity.HeaderEdgeIdentity: e.assert(t, guest, "llm-api", http.MethodPost, path)}, 200},
		{"a user's JWT", map[string]string{"Authorization": "Bearer " + e.token("bob", "user")}, 200},
		{"a guest's JWT", map[string]string{"Authorization": "Bearer " + e.token("guest-2", "guest")}, 200},
		{"nothing", map[string]string{}, 401},
		{"forged identity headers", map[string]string{"X-User-ID": "alice", "X-Auth-Method": "apikey", "X-User-Roles": "admin"}, 401},
		{"an assertion for another path", map[string]string{identity.HeaderEdgeIdentity: e.assert(t, keyAuth, "llm-api", http.MethodPost, "/v1/embeddings")}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(stub.Requests())
			r := e.call(http.MethodPost, path, body, c.header)
			if r.status != c.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if reached := len(stub.Requests()) > before; reached != (c.status == 200) {
				t.Fatalf("upstream reached: %v", reached)
			}
			if c.status == 200 && stub.Last().Header.Get(identity.HeaderEdgeIdentity) != "" {
				t.Fatal("X-Edge-Identity forwarded")
			}
		})
	}
}

func TestModelRoutesWithoutUpstreamOrAuth(t *testing.T) {
	h := newHarness(t, options{})
	if r := h.api(http.MethodGet, "/v1/models", h.token("alice", "user"), ""); r.status != 503 || r.code() != "llm_not_configured" {
		t.Fatalf("no upstream: %d %s", r.status, r.body)
	}
	if r := h.api(http.MethodGet, "/v1/models", "", ""); r.status != 401 {
		t.Fatalf("no upstream, no credential: %d %s", r.status, r.body)
	}
	h = newHarness(t, options{authOff: true, llm: newProxy(t, "http://127.0.0.1:9", nil)})
	if r := h.api(http.MethodGet, "/v1/models", "", ""); r.status != 503 || r.code() != "auth_disabled" {
		t.Fatalf("auth off: %d %s", r.status, r.body)
	}
	h = newHarness(t, options{llm: newProxy(t, "http://127.0.0.1:9", nil)})
	if r := h.api(http.MethodGet, "/v1/chat/completions", h.token("alice", "user"), ""); r.status != 405 {
		t.Fatalf("GET chat: %d %s", r.status, r.body)
	}
	if r := h.api(http.MethodPost, "/v1/other", h.token("alice", "user"), "{}"); r.status != 404 {
		t.Fatalf("other path: %d %s", r.status, r.body)
	}
}

// TestStreamOutlivesTheListenersWriteTimeout: the proxy extends the write
// deadline of a model exchange past the listener's WriteTimeout (30 s in
// production, 200 ms here).
func TestStreamOutlivesTheListenersWriteTimeout(t *testing.T) {
	e := newLLMEnv(t, func(c *llmproxy.Config) { c.Timeout = 10 * time.Second })
	e.stub.Hold = make(chan struct{})
	srv := httptest.NewUnstartedServer(e.public)
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	time.AfterFunc(600*time.Millisecond, func() { close(e.stub.Hold) })
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+e.token("alice", "user"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
		t.Fatalf("stream cut by the write timeout: %v %q", err, b)
	}
}

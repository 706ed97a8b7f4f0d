package devgw

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// corsYML is kong.yml's cors (explicit origins, no credentials) in front of
// header-guard limited to 5 header lines, so a plugin's own answer (431) can
// be checked for CORS headers too.
const corsYML = `_format_version: "3.0"
services:
- name: svc
  url: %s
  plugins:
  - name: cors
    config:
      origins: [http://localhost:3000, http://127.0.0.1:3000]
      methods: [GET, POST, DELETE, OPTIONS]
      headers: [Authorization, Content-Type, X-API-Key, X-Request-ID]
      exposed_headers: [X-Request-ID, RateLimit-Limit]
      credentials: false
      max_age: 600
  routes:
  - name: r
    paths: [/v1/models]
    strip_path: false
    plugins:
    - name: header-guard
      config: {max_headers: 5}
`

func TestCORSPreflightIsAnsweredBeforeEveryPlugin(t *testing.T) {
	up := newUpstream(t, nil)
	g, _ := newGateway(t, fmt.Sprintf(corsYML, up.URL), Options{})
	r := httptest.NewRequest("OPTIONS", "/v1/models", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "authorization")
	for i := range 6 { // more than header-guard allows: the preflight never reaches it
		r.Header.Set(fmt.Sprintf("X-Pad-%d", i), "x")
	}
	rec := serve(g, r)
	h := rec.Header()
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("preflight: %d %q", rec.Code, rec.Body)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  "http://localhost:3000",
		"Access-Control-Allow-Methods": "GET,POST,DELETE,OPTIONS",
		"Access-Control-Allow-Headers": "Authorization,Content-Type,X-API-Key,X-Request-ID",
		"Access-Control-Max-Age":       "600",
	}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if h.Get("Vary") != "Origin" || h.Get("Access-Control-Allow-Credentials") != "" || h.Get("X-Request-ID") != "" {
		t.Errorf("preflight headers: %v", h)
	}
	if up.count() != 0 {
		t.Fatal("the preflight reached the upstream")
	}
}

func TestCORSHeadersOnProxiedAndPluginAnswers(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Encoding")
		if r.URL.Query().Has("acao") {
			w.Header().Set("Access-Control-Allow-Origin", "*") // the edge's answer wins
		}
	})
	g, _ := newGateway(t, fmt.Sprintf(corsYML, up.URL), Options{})

	r := httptest.NewRequest("GET", "/v1/models?acao", nil)
	r.Header.Set("Origin", "http://127.0.0.1:3000")
	rec := serve(g, r)
	h := rec.Header()
	if rec.Code != 200 || strings.Join(h.Values("Access-Control-Allow-Origin"), ",") != "http://127.0.0.1:3000" ||
		h.Get("Access-Control-Expose-Headers") != "X-Request-ID,RateLimit-Limit" ||
		!slices.Equal(h.Values("Vary"), []string{"Accept-Encoding", "Origin"}) {
		t.Fatalf("simple request: %d %v", rec.Code, h)
	}

	r = httptest.NewRequest("GET", "/v1/models", nil)
	r.Header.Set("Origin", "https://evil.example")
	rec = serve(g, r)
	if v := rec.Header().Values("Access-Control-Allow-Origin"); len(v) != 0 {
		t.Fatalf("a foreign origin got Access-Control-Allow-Origin %v", v)
	}

	r = httptest.NewRequest("GET", "/v1/models", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	for i := range 6 {
		r.Header.Set(fmt.Sprintf("X-Pad-%d", i), "x")
	}
	rec = serve(g, r)
	if rec.Code != 431 || rec.Header().Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("a plugin's answer lacks CORS headers: %d %v", rec.Code, rec.Header())
	}
}

func corsRun(t *testing.T, c corsConfig, method string, h http.Header) *Exchange {
	t.Helper()
	p, err := newCORS(c)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(method, "/", nil)
	r.Header = h
	ex := newExchange(r, "/", nil)
	p.run(ex)
	return ex
}

func respHeaders(ex *Exchange) http.Header {
	out := http.Header{}
	if ex.Exited() {
		rec := httptest.NewRecorder()
		ex.writeExit(rec)
		return rec.Header()
	}
	ex.applyResponse(out)
	return out
}

func TestCORSOriginRulesAsKong(t *testing.T) {
	preflight := func(origin string) http.Header {
		return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"PUT"}, "Access-Control-Request-Headers": {"x-a, x-b"}}
	}
	age := 3600.0
	tests := []struct {
		name    string
		conf    corsConfig
		method  string
		req     http.Header
		want    map[string]string
		exited  bool
		noVary  bool
		missing []string
	}{
		{"no origins: wildcard", corsConfig{}, "GET", http.Header{"Origin": {"http://a"}},
			map[string]string{"Access-Control-Allow-Origin": "*"}, false, true, nil},
		{"wildcard with credentials mirrors the origin", corsConfig{Origins: []string{"*"}, Credentials: true}, "GET",
			http.Header{"Origin": {"http://a"}},
			map[string]string{"Access-Control-Allow-Origin": "http://a", "Access-Control-Allow-Credentials": "true"}, false, false, nil},
		{"one plain origin is sent as is", corsConfig{Origins: []string{"https://app.example"}}, "GET",
			http.Header{"Origin": {"https://other.example"}},
			map[string]string{"Access-Control-Allow-Origin": "https://app.example"}, false, false, nil},
		{"default ports are normalized", corsConfig{Origins: []string{"https://a.example:443", "http://b"}}, "GET",
			http.Header{"Origin": {"https://A.example"}},
			map[string]string{"Access-Control-Allow-Origin": "https://A.example"}, false, false, nil},
		{"regex origin", corsConfig{Origins: []string{`https://.*\.example\.com`, "http://x"}}, "GET",
			http.Header{"Origin": {"https://app.example.com"}},
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"}, false, false, nil},
		{"a wildcard among origins matches any", corsConfig{Origins: []string{"http://x", "*"}}, "GET",
			http.Header{"Origin": {"http://y"}},
			map[string]string{"Access-Control-Allow-Origin": "http://y"}, false, false, nil},
		{"regex origin is anchored", corsConfig{Origins: []string{`https://.*\.example\.com`, "http://x"}}, "GET",
			http.Header{"Origin": {"https://app.example.com.evil"}}, nil, false, false,
			[]string{"Access-Control-Allow-Origin"}},
		{"credentials with explicit origins", corsConfig{Origins: []string{"http://a", "http://b"}, Credentials: true}, "GET",
			http.Header{"Origin": {"http://b"}},
			map[string]string{"Access-Control-Allow-Origin": "http://b", "Access-Control-Allow-Credentials": "true"}, false, false, nil},
		{"preflight defaults echo the requested headers", corsConfig{MaxAge: &age}, "OPTIONS", preflight("http://a"),
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "x-a, x-b",
				"Access-Control-Allow-Methods": corsDefaultMethods, "Access-Control-Max-Age": "3600"}, true, true, nil},
		{"private network", corsConfig{PrivateNetwork: true}, "OPTIONS",
			http.Header{"Origin": {"http://a"}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Private-Network": {"true"}},
			map[string]string{"Access-Control-Allow-Private-Network": "true"}, true, true, nil},
		{"preflight_continue leaves the preflight to the upstream", corsConfig{PreflightContinue: true}, "OPTIONS", preflight("http://a"),
			nil, false, true, []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods"}},
		{"OPTIONS without Access-Control-Request-Method is no preflight", corsConfig{}, "OPTIONS",
			http.Header{"Origin": {"http://a"}}, map[string]string{"Access-Control-Allow-Origin": "*"}, false, true,
			[]string{"Access-Control-Allow-Methods"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := corsRun(t, tt.conf, tt.method, tt.req)
			if ex.Exited() != tt.exited {
				t.Fatalf("exited = %v", ex.Exited())
			}
			if tt.exited && ex.exitStatus != 200 {
				t.Fatalf("preflight status %d", ex.exitStatus)
			}
			h := respHeaders(ex)
			for k, v := range tt.want {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, h.Get(k), v, h)
				}
			}
			for _, k := range tt.missing {
				if h.Get(k) != "" {
					t.Errorf("%s = %q, want none", k, h.Get(k))
				}
			}
			if vary := strings.Join(h.Values("Vary"), ","); (vary == "Origin") == tt.noVary {
				t.Errorf("Vary = %q", vary)
			}
		})
	}
	if _, err := newCORS(corsConfig{Origins: []string{"https://(unclosed"}}); err == nil {
		t.Fatal("an invalid origin regex was accepted")
	}
}

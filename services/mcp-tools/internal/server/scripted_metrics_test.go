package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/tools"
)

// TestScrapeAfterAScriptedRunShowsTheExactCounters: a scripted run on the
// public router — allowed, refused by reason (no credential, bad
// credential, missing role, API key where only JWT is accepted, wrong
// content type), unrouted — then a scrape of the internal listener over
// HTTP shows exactly those requests by route template, method and status.
func TestScrapeAfterAScriptedRunShowsTheExactCounters(t *testing.T) {
	m := httpmetrics.New("mcp-tools")
	ts, err := tools.New(tools.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mcpAuth, _ := edgehttp.New(edgehttp.Config{Authenticator: people})
	adminAuth, err := edgehttp.New(edgehttp.Config{Authenticator: people, Policy: identity.Policy{
		RequiredRoles: []string{"admin"}, AuthMethods: []string{identity.MethodJWT}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{MCP: ts.MCP, MCPAuth: mcpAuth, Approvals: approval.New(approval.Config{}), AdminAuth: adminAuth,
		MaxBodyBytes: 4096, Logger: zerolog.Nop(), Metrics: m}
	pub, err := Public(cfg)
	if err != nil {
		t.Fatal(err)
	}
	internal, err := Internal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(internal)
	defer srv.Close()

	script := []struct {
		method, path, cred, body string
		want                     int
	}{
		{"GET", "/v1/approvals", "admin", "", 200},
		{"GET", "/v1/approvals", "admin", "", 200},
		{"GET", "/v1/approvals", "", "", 401},                 // no credential
		{"GET", "/v1/approvals", "forged", "", 401},           // bad credential
		{"GET", "/v1/approvals", "user", "", 403},             // missing role
		{"GET", "/v1/approvals", "key", "", 403},              // API key on a JWT-only route
		{"GET", "/v1/approvals/ap_missing", "admin", "", 400}, // not an approval id
		{"POST", "/v1/mcp", "", "{}", 401},
		{"GET", "/v1/nothing-here", "admin", "", 404},
	}
	for i, s := range script {
		if rec, body := serve(pub, s.method, s.path, s.cred, s.body); rec.Code != s.want {
			t.Fatalf("request %d %s %s: %d %v, want %d", i, s.method, s.path, rec.Code, body, s.want)
		}
	}
	got := testenv.Scrape(t, srv.URL+"/metrics")
	series := func(route, method, status string) string {
		return `edgeguard_http_requests_total{method="` + method + `",route="` + route + `",service="mcp-tools",status="` + status + `"}`
	}
	want := map[string]float64{
		series("/v1/approvals", "GET", "200"):     2,
		series("/v1/approvals", "GET", "401"):     2,
		series("/v1/approvals", "GET", "403"):     2,
		series("/v1/approvals/:id", "GET", "400"): 1,
		series("/v1/mcp", "POST", "401"):          1,
		series("unmatched", "GET", "404"):         1,
		`edgeguard_http_request_duration_seconds_count{method="GET",route="/v1/approvals",service="mcp-tools"}`: 6,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %g, want %g", k, got[k], v)
		}
	}
	total := 0.0
	for k, v := range got {
		if strings.HasPrefix(k, "edgeguard_http_requests_total{") && !strings.Contains(k, `route="/metrics"`) {
			total += v
		}
		if strings.Contains(k, "nothing-here") || strings.Contains(k, "ap_missing") {
			t.Errorf("a raw path became a label: %s", k)
		}
	}
	if total != float64(len(script)) {
		t.Errorf("%g requests counted, want %d", total, len(script))
	}
}

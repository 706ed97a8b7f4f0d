package server

import (
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
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
	cfg := Config{MCP: ts.MCP, Authenticator: people, Approvals: approval.New(approval.Config{}),
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
	want := map[string]float64{
		testenv.HTTPRequests("mcp-tools", "/v1/approvals", "GET", 200):                                          2,
		testenv.HTTPRequests("mcp-tools", "/v1/approvals", "GET", 401):                                          2,
		testenv.HTTPRequests("mcp-tools", "/v1/approvals", "GET", 403):                                          2,
		testenv.HTTPRequests("mcp-tools", "/v1/approvals/:id", "GET", 400):                                      1,
		testenv.HTTPRequests("mcp-tools", "/v1/mcp", "POST", 401):                                               1,
		testenv.HTTPRequests("mcp-tools", "unmatched", "GET", 404):                                              1,
		`edgeguard_http_request_duration_seconds_count{method="GET",route="/v1/approvals",service="mcp-tools"}`: 6,
	}
	testenv.CheckHTTPMetrics(t, got, want, len(script), "nothing-here", "ap_missing")
}

package server_test

import (
	"strings"
	"testing"
)

func TestMetricsOnTheInternalListenerOnly(t *testing.T) {
	h := newHarness(t, options{})
	tok := h.token("alice", "user")
	h.api("GET", "/auth/api-keys", tok, "")
	h.api("GET", "/auth/api-keys", "", "")
	r := serve(h.internal, "GET", "/metrics", nil, nil)
	if r.status != 200 {
		t.Fatalf("internal /metrics: %d", r.status)
	}
	for _, want := range []string{
		`edgeguard_http_requests_total{method="GET",route="/auth/api-keys",service="llm-api",status="200"} 1`,
		`edgeguard_http_requests_total{method="GET",route="/auth/api-keys",service="llm-api",status="401"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(string(r.body), tok) {
		t.Fatal("a token reached the metrics")
	}
	if p := serve(h.public, "GET", "/metrics", nil, nil); p.status != 404 {
		t.Fatalf("public /metrics: %d, want 404", p.status)
	}
}

package server_test

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// TestScrapeAfterAScriptedRunShowsTheExactCounters: a scripted run on the
// public router — allowed, refused by reason (no credential, a forged edge
// assertion, another owner's media, a type that is no image, a bad
// signature), unrouted — then a scrape of the internal listener over HTTP
// shows exactly those requests by route template, method and status, and
// no raw path, id or signature.
func TestScrapeAfterAScriptedRunShowsTheExactCounters(t *testing.T) {
	h := newHarness(t, options{})
	srv := httptest.NewServer(h.internal)
	defer srv.Close()

	m := h.mustUpload("alice", png(1000)) // 201
	id := m.ID
	script := []struct {
		r    req
		want int
	}{
		{req{method: "GET", path: "/v1/media/" + id, as: "alice"}, 200},
		{req{method: "GET", path: "/v1/media/" + id, as: "alice"}, 200},
		{req{method: "GET", path: "/v1/media/" + id, as: "bob"}, 404}, // not the owner
		{req{method: "GET", path: "/v1/media/" + id}, 401},            // no credential
		{req{method: "GET", path: "/v1/media/" + id, header: map[string]string{identity.HeaderEdgeIdentity: "eyJhbGciOiJFZERTQSJ9.e30.forged"}}, 401},
		{req{method: "POST", path: "/v1/media", body: strings.NewReader("plain text, no image"), as: "alice"}, 415},
		{req{method: "GET", path: "/v1/media/" + id + "/content?exp=1&sig=forged-signature"}, 403},
		{req{method: "GET", path: "/v1/nothing-here"}, 404},
	}
	for i, s := range script {
		if w := h.do(s.r); w.Code != s.want {
			t.Fatalf("request %d %s %s: %d %s, want %d", i, s.r.method, s.r.path, w.Code, w.Body, s.want)
		}
	}
	got := testenv.Scrape(t, srv.URL+"/metrics")
	series := func(route, method string, status int) string {
		return `edgeguard_http_requests_total{method="` + method + `",route="` + route + `",service="media-api",status="` + strconv.Itoa(status) + `"}`
	}
	for k, v := range map[string]float64{
		series("/v1/media", "POST", 201):            1,
		series("/v1/media", "POST", 415):            1,
		series("/v1/media/:id", "GET", 200):         2,
		series("/v1/media/:id", "GET", 404):         1,
		series("/v1/media/:id", "GET", 401):         2,
		series("/v1/media/:id/content", "GET", 403): 1,
		series("unmatched", "GET", 404):             1,
		`edgeguard_http_request_duration_seconds_count{method="GET",route="/v1/media/:id",service="media-api"}`: 5,
	} {
		if got[k] != v {
			t.Errorf("%s = %g, want %g", k, got[k], v)
		}
	}
	total := 0.0
	for k, v := range got {
		if strings.HasPrefix(k, "edgeguard_http_requests_total{") && !strings.Contains(k, `route="/metrics"`) {
			total += v
		}
		if strings.Contains(k, id) || strings.Contains(k, "forged") || strings.Contains(k, "nothing-here") {
			t.Errorf("a raw path, id or signature became a label: %s", k)
		}
	}
	if total != float64(len(script)+1) {
		t.Errorf("%g requests counted, want %d", total, len(script)+1)
	}
	h.checkLogs()
}

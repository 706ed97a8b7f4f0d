package server_test

import (
	"net/http/httptest"
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
	testenv.CheckHTTPMetrics(t, got, map[string]float64{
		testenv.HTTPRequests("media-api", "/v1/media", "POST", 201):                                             1,
		testenv.HTTPRequests("media-api", "/v1/media", "POST", 415):                                             1,
		testenv.HTTPRequests("media-api", "/v1/media/:id", "GET", 200):                                          2,
		testenv.HTTPRequests("media-api", "/v1/media/:id", "GET", 404):                                          1,
		testenv.HTTPRequests("media-api", "/v1/media/:id", "GET", 401):                                          2,
		testenv.HTTPRequests("media-api", "/v1/media/:id/content", "GET", 403):                                  1,
		testenv.HTTPRequests("media-api", "unmatched", "GET", 404):                                              1,
		`edgeguard_http_request_duration_seconds_count{method="GET",route="/v1/media/:id",service="media-api"}`: 5,
	}, len(script)+1, id, "forged", "nothing-here")
	h.checkLogs()
}

package server_test

import (
	"net/http/httptest"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// TestScrapeAfterAScriptedRunShowsTheExactCounters: a scripted run on the
// public router — allowed (key management, guest logins), refused by reason
// (no credential, a bad token, a guest on a JWT-only non-guest route, a bad
// body), rate-limited (the per-IP guest-login limit), unrouted — then a
// scrape of the internal listener over HTTP shows exactly those requests by
// route template, method and status.
func TestScrapeAfterAScriptedRunShowsTheExactCounters(t *testing.T) {
	e := newGuestEnv(t, guestOpts{perIP: "2/h"})
	srv := httptest.NewServer(e.internal)
	defer srv.Close()

	alice := e.token("alice", "user")
	guest := e.token("guest-1", "guest")
	steps := []struct {
		name string
		run  func() resp
		want int
	}{
		{"list keys", func() resp { return e.api("GET", "/auth/api-keys", alice, "") }, 200},
		{"create key", func() resp { return e.api("POST", "/auth/api-keys", alice, `{"name":"ci"}`) }, 201},
		{"list keys", func() resp { return e.api("GET", "/auth/api-keys", alice, "") }, 200},
		{"no credential", func() resp { return e.api("GET", "/auth/api-keys", "", "") }, 401},
		{"bad token", func() resp { return e.api("GET", "/auth/api-keys", "eyJhbGciOiJSUzI1NiJ9.e30.forged", "") }, 401},
		{"guest", func() resp { return e.api("GET", "/auth/api-keys", guest, "") }, 403},
		{"bad body", func() resp { return e.api("POST", "/auth/api-keys", alice, `{"name":`) }, 400},
		{"guest login", func() resp { return e.post("/auth/guest-login", "", "198.51.100.7:4000", nil) }, 200},
		{"guest login", func() resp { return e.post("/auth/guest-login", "", "198.51.100.7:4001", nil) }, 200},
		{"guest login limited", func() resp { return e.post("/auth/guest-login", "", "198.51.100.7:4002", nil) }, 429},
		{"guest login limited", func() resp { return e.post("/auth/guest-login", "", "198.51.100.7:4003", nil) }, 429},
		{"unrouted", func() resp { return e.api("GET", "/v1/nothing-here", alice, "") }, 404},
	}
	for i, s := range steps {
		if r := s.run(); r.status != s.want {
			t.Fatalf("step %d (%s): %d %s, want %d", i, s.name, r.status, r.body, s.want)
		}
	}
	got := testenv.Scrape(t, srv.URL+"/metrics")
	testenv.CheckHTTPMetrics(t, got, map[string]float64{
		testenv.HTTPRequests("llm-api", "/auth/api-keys", "GET", 200):                                              2,
		testenv.HTTPRequests("llm-api", "/auth/api-keys", "POST", 201):                                             1,
		testenv.HTTPRequests("llm-api", "/auth/api-keys", "GET", 401):                                              2,
		testenv.HTTPRequests("llm-api", "/auth/api-keys", "GET", 403):                                              1,
		testenv.HTTPRequests("llm-api", "/auth/api-keys", "POST", 400):                                             1,
		testenv.HTTPRequests("llm-api", "/auth/guest-login", "POST", 200):                                          2,
		testenv.HTTPRequests("llm-api", "/auth/guest-login", "POST", 429):                                          2,
		testenv.HTTPRequests("llm-api", "unmatched", "GET", 404):                                                   1,
		`edgeguard_http_request_duration_seconds_count{method="POST",route="/auth/guest-login",service="llm-api"}`: 4,
	}, len(steps), alice, guest, "forged", "nothing-here", "198.51.100.7")
}

package pluginmetrics_test

import (
	"fmt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/plugins/internal/allinone"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"

	"github.com/Kong/go-pdk/test"
)

// edgeguardConfig is the all-in-one plugin as Kong sends it: header-guard,
// keycloak-jwt (credential required) and redis-ratelimit (3 per second per
// identity, on the real Redis).
func edgeguardConfig(t *testing.T, p *jwttest.IdP, redisAddr, ns string) *allinone.Config {
	key, _ := plugintest.EdgeKey(t)
	sec := map[string]map[string]any{
		"header_guard": {"max_headers": 50},
		"jwt": {"issuers": []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}}, "audiences": []string{"jan-api"},
			"upstream_name": "llm-api", "edge_signing_key_file": key},
		"ratelimit": {"second": 3, "namespace": ns, "redis": map[string]any{"addresses": []string{redisAddr}}},
	}
	set := map[string]any{}
	for name, cfg := range sec {
		set[name] = cfg
	}
	js := plugintest.KongJSON(t, allinone.New(), set)
	return plugintest.Decode(t, allinone.New, js).(*allinone.Config)
}

// TestScrapeAfterAScriptedRunShowsTheExactCounters drives the all-in-one
// plugin through the Kong path (go-pdk's test environment: the adapter,
// the pipeline, the metrics) with a scripted run — allowed requests, denials by
// reason, rate-limited ones — then scrapes the plugin server's metrics
// listener (-metrics-listen) over HTTP and checks every counter's exact
// increase.
func TestScrapeAfterAScriptedRunShowsTheExactCounters(t *testing.T) {
	redisAddr := testenv.RedisAddr(t)
	addr, stop, err := pluginmetrics.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	url := "http://" + addr.String() + "/metrics"

	p := jwttest.New(t)
	ns := fmt.Sprintf("metrics-%d", time.Now().UnixNano())
	c := edgeguardConfig(t, p, redisAddr, ns)
	good := p.Token(t, "u-metrics", nil)
	expired := p.Token(t, "u-metrics", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	wrongAud := p.Token(t, "u-metrics", map[string]any{"aud": "other-api"})

	run := func(auth string) int {
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models", Headers: h})
		env.Access(kongadapter.Handler(c))
		if env.ClientRes.Status == 0 {
			return 200 // passed on (go-pdk's echo upstream)
		}
		return env.ClientRes.Status
	}
	// Provision the instance (the first request) and wait for its key set,
	// as a plugin server does before traffic matters.
	run("")
	ageKey := `edgeguard_jwks_key_set_age_seconds{issuer="` + p.Issuer + `"}`
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if age, ok := testenv.Scrape(t, url)[ageKey]; ok && age >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key set never loaded")
		}
	}

	before := testenv.Scrape(t, url)
	script := []struct {
		auth string
		want int
	}{
		{"Bearer " + good, 200}, {"Bearer " + good, 200}, {"Bearer " + good, 200}, // the budget: 3 per second
		{"Bearer " + good, 429}, {"Bearer " + good, 429}, // rate-limited
		{"Bearer " + expired, 401}, {"Bearer " + expired, 401}, // token_expired
		{"Bearer " + wrongAud, 401}, // audience
		{"", 401},                   // no credential
	}
	for i, s := range script {
		if got := run(s.auth); got != s.want {
			t.Fatalf("request %d: status %d, want %d", i, got, s.want)
		}
	}
	after := testenv.Scrape(t, url)
	delta := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		`edgeguard_plugin_requests_total{outcome="allow",plugin="edgeguard"}`:                       3,
		`edgeguard_plugin_requests_total{outcome="deny",plugin="edgeguard"}`:                        6,
		`edgeguard_plugin_requests_total{outcome="error",plugin="edgeguard"}`:                       0,
		`edgeguard_plugin_denials_total{code="rate_limited",plugin="edgeguard",status="429"}`:       2,
		`edgeguard_plugin_denials_total{code="token_expired",plugin="edgeguard",status="401"}`:      2,
		`edgeguard_plugin_denials_total{code="audience_mismatch",plugin="edgeguard",status="401"}`:  1,
		`edgeguard_plugin_denials_total{code="credential_missing",plugin="edgeguard",status="401"}`: 1,
		`edgeguard_plugin_pdk_calls_count{plugin="edgeguard"}`:                                      9,
		`edgeguard_ratelimit_decisions_total{source="redis"}`:                                       4, // 3 allowed, the first 429
		`edgeguard_ratelimit_decisions_total{source="deny_cache"}`:                                  1, // the second 429, no round trip
		`edgeguard_ratelimit_decisions_total{source="fallback"}`:                                    0,
		`edgeguard_ratelimit_redis_errors_total`:                                                    0,
		`edgeguard_jwks_fetch_failures_total{issuer="` + p.Issuer + `"}`:                            0,
	} {
		if _, ok := after[series]; !ok && want != 0 {
			t.Errorf("the scrape lacks %s", series)
			continue
		}
		if got := delta(series); got != want {
			t.Errorf("%s increased by %g, want %g", series, got, want)
		}
	}
	if after[`edgeguard_ratelimit_fallback_active`] != 0 {
		t.Error("the rate limiter reports its fallback active with Redis up")
	}
	if after[`edgeguard_jwks_fetches_total{issuer="`+p.Issuer+`"}`] < 1 {
		t.Error("no JWKS fetch counted")
	}
	for series := range after {
		for _, secret := range []string{good, expired, wrongAud} {
			if strings.Contains(series, secret) {
				t.Fatal("a token reached the metrics")
			}
		}
	}
}

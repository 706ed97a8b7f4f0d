package pluginmetrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

func scrape(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return string(b)
}

func TestScrapeShowsOutcomesAndEdgeState(t *testing.T) {
	Observe("keycloak-jwt", 3, 0, "")
	Observe("keycloak-jwt", 2, 401, "token_expired")
	Observe("redis-ratelimit", 2, 429, "rate_limited")
	Observe("keycloak-apikey", 3, 503, "key_validation_unavailable")

	p := jwttest.New(t)
	v, err := jwtauth.Shared(jwtauth.Config{
		Issuers:   []jwtauth.Issuer{{Issuer: p.Issuer, JWKSURL: p.JWKSURL()}},
		Audiences: []string{"metrics-test"},
		Logger:    zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !v.Ready() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	out := scrape(t)
	for _, want := range []string{
		`edgeguard_plugin_requests_total{outcome="allow",plugin="keycloak-jwt"} 1`,
		`edgeguard_plugin_denials_total{code="token_expired",plugin="keycloak-jwt",status="401"} 1`,
		`edgeguard_plugin_denials_total{code="rate_limited",plugin="redis-ratelimit",status="429"} 1`,
		`edgeguard_plugin_requests_total{outcome="error",plugin="keycloak-apikey"} 1`,
		`edgeguard_plugin_pdk_calls_bucket{plugin="keycloak-jwt",le="3"} 2`,
		`edgeguard_jwks_fetches_total{issuer="` + p.Issuer + `"}`,
		`edgeguard_jwks_key_set_age_seconds{issuer="` + p.Issuer + `"}`,
		`edgeguard_ratelimit_fallback_active 0`,
		`edgeguard_apikey_cache_entries`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

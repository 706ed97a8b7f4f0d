package allinone

import (
	"testing"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
)

// BenchmarkCachedJWTRequest is the all-in-one plugin's own work on an
// allowed request with a cached JWT (header guard, authentication,
// authorization, admission with the signed assertion), on the in-memory
// host: what the Go side costs per request, without Kong's PDK round trips.
func BenchmarkCachedJWTRequest(b *testing.B) {
	p := jwttest.New(b)
	key, _ := plugintest.EdgeKey(b)
	js := plugintest.KongJSON(b, New(), map[string]any{
		"header_guard": map[string]any{"max_headers": 50},
		"jwt": map[string]any{
			"issuers":       []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}},
			"audiences":     []string{"jan-api"},
			"upstream_name": "llm-api", "edge_signing_key_file": key,
		},
	})
	c := plugintest.Decode(b, New, js).(*Config)
	h := map[string][]string{
		"Authorization": {"Bearer " + p.Token(b, "u-1", nil)},
		"X-Request-ID":  {"0123456789abcdef"},
		"User-Agent":    {"openai-python/1.0"},
		"Content-Type":  {"application/json"},
		"X-User-ID":     {"spoofed"},
	}
	warm := exchange.NewFake("POST", "/v1/chat/completions", h)
	c.Handle(warm)
	if warm.ExitStatus != 0 {
		b.Fatalf("warm-up answered %d %s", warm.ExitStatus, warm.ExitBody)
	}
	b.ReportAllocs()
	for b.Loop() {
		f := exchange.NewFake("POST", "/v1/chat/completions", h)
		c.Handle(f)
		if f.ExitStatus != 0 {
			b.Fatal(f.ExitStatus)
		}
	}
}

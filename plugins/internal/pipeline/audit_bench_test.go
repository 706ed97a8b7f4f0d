package pipeline

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// deny401 is a stage that refuses the request, as keycloak-jwt does for an
// expired token.
func deny401(*Request) Result {
	return Deny(401, "token_expired", "the token has expired", map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`})
}

// BenchmarkDeniedRequestWithoutAudit is the baseline of
// BenchmarkDeniedRequestWithAudit: the same refused request (fake
// exchange, error body, headers) with audit off.
func BenchmarkDeniedRequestWithoutAudit(b *testing.B) {
	hdr := map[string][]string{"Authorization": {"Bearer x"}, "X-Request-ID": {"req-1"}}
	b.ReportAllocs()
	for b.Loop() {
		ex := exchange.NewFake("GET", "/v1/chat/completions", hdr)
		runAudited(nil, "keycloak-jwt", ex, deny401)
	}
}

// BenchmarkDeniedRequestWithAudit adds the auth.denied event: event building and the non-blocking enqueue (validation and the write
// are the writer's, off the request path).
func BenchmarkDeniedRequestWithAudit(b *testing.B) {
	const queue = 1 << 14
	em, err := audit.New(audit.Config{Writer: discard{}, QueueSize: queue, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer em.Close()
	hdr := map[string][]string{"Authorization": {"Bearer x"}, "X-Request-ID": {"req-1"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%(queue/2) == queue/2-1 { // drain with the timer stopped: the request path's cost, not the writer's
			b.StopTimer()
			_ = em.Flush(context.Background())
			b.StartTimer()
		}
		ex := exchange.NewFake("GET", "/v1/chat/completions", hdr)
		runAudited(em, "keycloak-jwt", ex, deny401)
	}
}

type discard struct{}

func (discard) Write(context.Context, []audit.Event) error { return nil }

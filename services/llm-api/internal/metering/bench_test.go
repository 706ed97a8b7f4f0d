package metering

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// benchChat sends one chat completion through h (a fresh request each
// time, the caller's identity in the context, as edgehttp puts it).
func benchChat(b *testing.B, h http.Handler, sub string) {
	b.Helper()
	body := chat(`,"max_tokens":16`)
	id := &identity.Identity{Subject: sub, RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req = req.WithContext(edgehttp.WithIdentity(req.Context(), id))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
}

// BenchmarkChatMetered and BenchmarkChatUnmetered: a proxied chat
// completion (llmproxy to a loopback fake model server) with and without
// the budgets in front (real Redis on loopback: reserve before, settle
// after, the ledger a memory one). The difference is what budgets add to a
// request; compare them in the same run (BENCHMARKS.md).
func BenchmarkChatMetered(b *testing.B) {
	r := newRig(b, testenv.RedisAddr(b), nil)
	benchChat(b, r.h, "bench-"+NewID()[:12])
}

func BenchmarkChatUnmetered(b *testing.B) {
	r := newRig(b, testenv.RedisAddr(b), nil)
	benchChat(b, r.h.cfg.Upstream, "bench-"+NewID()[:12])
}

// latency sends b.N chat completions one after another to h behind a real
// HTTP server on loopback and reports the client-observed p50 and p90
// (the time to the answer's last byte: a plain answer carries its
// Content-Length, so the settlement after it is off the client's path).
func latency(b *testing.B, h http.Handler) {
	b.Helper()
	sub := "bench-" + NewID()[:12]
	id := &identity.Identity{Subject: sub, RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(edgehttp.WithIdentity(r.Context(), id)))
	}))
	defer srv.Close()
	body := chat(`,"max_tokens":16`)
	client := srv.Client()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		lat = append(lat, time.Since(start))
		if res.StatusCode != http.StatusOK {
			b.Fatalf("%d", res.StatusCode)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-µs")
}

// BenchmarkLatencyMetered and BenchmarkLatencyUnmetered: the p50 a client
// sees with and without budgets (compare them in the same run).
func BenchmarkLatencyMetered(b *testing.B) {
	r := newRig(b, testenv.RedisAddr(b), nil)
	latency(b, r.h)
}

func BenchmarkLatencyUnmetered(b *testing.B) {
	r := newRig(b, testenv.RedisAddr(b), nil)
	latency(b, r.h.cfg.Upstream)
}

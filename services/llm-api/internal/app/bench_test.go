package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/rs/zerolog"
)

// BenchmarkValidateUncached measures what an edge cache miss costs: one
// POST /internal/api-keys/validate over loopback HTTP to the real service,
// which reads the key from PostgreSQL (no cache in llm-api for keys),
// verifies the HMAC and intersects the roles (owner lookups hit the ≤ 60 s
// role cache, as in production between two misses of one owner).
// Reports p50-ns and p99-ns of the per-request latency.
func BenchmarkValidateUncached(b *testing.B) {
	idp := jwttest.New(b)
	roles := keystest.NewRoles()
	roles.Set(keys.Owner{Subject: "alice", Username: "alice", Enabled: true, RealmRoles: []string{"user"}})
	cfg := testConfig(b, idp, pgtest.Schema(b), "")
	cfg.Strict = false
	a, err := app.New(context.Background(), cfg, zerolog.Nop(), app.Deps{Roles: roles, UsageInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	pub := httptest.NewServer(a.Public)
	defer pub.Close()
	internal := httptest.NewServer(a.Internal)
	defer internal.Close()

	st, body := call(b, http.MethodPost, pub.URL+"/auth/api-keys",
		map[string]string{"Authorization": "Bearer " + idp.Token(b, "alice", nil)}, `{"name":"bench"}`)
	if st != 201 {
		b.Fatalf("create: %d %s", st, body)
	}
	key := string(body[strings.Index(string(body), `"key":"`)+7:])
	key = key[:strings.IndexByte(key, '"')]
	payload := `{"key":"` + key + `"}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := internal.URL + "/internal/api-keys/validate"
	do := func() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Internal-Token", internalToken)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("validate: %d", resp.StatusCode)
		}
	}
	for range 50 { // warm the pool, the role cache and the connection
		do()
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		do()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		b.ReportMetric(float64(lat[n/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[min(n-1, n*99/100)].Nanoseconds()), "p99-ns")
	}
}

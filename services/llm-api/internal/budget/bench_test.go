package budget

import (
	"context"
	"testing"
)

// BenchmarkReserveSettle: one reservation and its settlement on the real
// Redis (loopback), a user scope with a minute rate and a day budget plus
// a model scope — the two round trips a metered request adds — against
// BenchmarkRedisPing, one PING round trip on the same client (the floor).
func BenchmarkReserveSettle(b *testing.B) {
	s, _ := realRedis(b)
	ctx := context.Background()
	sub := "bench-" + newID(b)
	l := Limits{TokensPerMinute: 1 << 40, TokensPerDay: 1 << 45}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r := req(b, sub, l, 100, 1, 50)
		r.Scopes = append(r.Scopes, Scope{Kind: "model", Part: "m:m", Limits: Limits{TokensPerDay: 1 << 45}})
		res, d, err := s.Reserve(ctx, r)
		if err != nil || d != nil {
			b.Fatal(err, d)
		}
		if _, err := s.Settle(ctx, res, 80, 40); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReserve is the reservation alone: the one round trip before the
// upstream call.
func BenchmarkReserve(b *testing.B) {
	s, _ := realRedis(b)
	ctx := context.Background()
	sub := "bench-" + newID(b)
	l := Limits{TokensPerMinute: 1 << 40, TokensPerDay: 1 << 45}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, d, err := s.Reserve(ctx, req(b, sub, l, 100, 1, 50)); err != nil || d != nil {
			b.Fatal(err, d)
		}
	}
}

// BenchmarkRedisPing is one round trip to the same Redis: the floor.
func BenchmarkRedisPing(b *testing.B) {
	_, rdb := realRedis(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := rdb.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

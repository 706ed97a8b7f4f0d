package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

func newID(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// realRedis is the Redis of make test, with a subject of this test's own.
func realRedis(t testing.TB) (*Store, redis.UniversalClient) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	return NewStore(rdb, time.Minute), rdb
}

func req(t testing.TB, sub string, l Limits, prompt, n, cap int64) Request {
	return Request{ID: newID(t), Subject: sub, Model: "m", Scopes: []Scope{{Kind: "user", Part: "u", Limits: l}},
		PromptTokens: prompt, N: n, Cap: cap, DefaultCap: 512, Price: Price{PromptNano: 500, CompletionNano: 1500}}
}

func TestReserveClampsTheDefaultCapAndRefusesAClientCapThatDoesNotFit(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "clamp-" + newID(t)
	l := Limits{TokensPerDay: 1000}

	// no cap from the client: the default (512)
	r, d, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 0))
	if err != nil || d != nil || r.Cap != 512 || r.Tokens != 612 {
		t.Fatalf("first: %+v %+v %v", r, d, err)
	}
	// 388 left: a request without a cap gets what is left after its prompt
	r2, d, err := s.Reserve(ctx, req(t, sub, l, 100, 2, 0))
	if err != nil || d != nil || r2.Cap != 144 || r2.Tokens != 388 {
		t.Fatalf("clamped: %+v %+v %v", r2, d, err)
	}
	// nothing left: the client's own cap is refused, never truncated
	_, d, err = s.Reserve(ctx, req(t, sub, l, 10, 1, 5))
	if err != nil || d == nil || d.Window != "tpd" || d.Limit != 1000 || d.Used != 1000 || d.Requested != 15 || d.Rate() {
		t.Fatalf("refusal: %+v %v", d, err)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 24*time.Hour {
		t.Fatalf("retry after %v: want until the end of the UTC day", d.RetryAfter)
	}
	// settle both far below: the rest comes back
	if st, err := s.Settle(ctx, r, 50, 10); err != nil || !st.Applied || st.Tokens != 60 {
		t.Fatalf("settle: %+v %v", st, err)
	}
	if st, err := s.Settle(ctx, r2, 20, 4); err != nil || !st.Applied {
		t.Fatalf("settle: %+v %v", st, err)
	}
	// a second settlement of the same reservation changes nothing
	if st, err := s.Settle(ctx, r2, 0, 0); err != nil || st.Applied {
		t.Fatalf("settled twice: %+v %v", st, err)
	}
	// 84 used: a cap of 900 fits with a prompt of 16
	if r3, d, err := s.Reserve(ctx, req(t, sub, l, 16, 1, 900)); err != nil || d != nil || r3.Cap != 900 {
		t.Fatalf("after the refund: %+v %+v %v", r3, d, err)
	}
}

func TestTheTightestScopeDecides(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "tight-" + newID(t)
	r := req(t, sub, Limits{TokensPerDay: 10000}, 10, 1, 0)
	r.KeyID = "k1"
	r.Scopes = append(r.Scopes,
		Scope{Kind: "key", Part: "k:k1", Limits: Limits{TokensPerMonth: 300}},
		Scope{Kind: "model", Part: "m:m", Limits: Limits{NanoUSDPerDay: 10*500 + 200*1500}})
	res, d, err := s.Reserve(ctx, r)
	// cost: 10×500 + cap×1500 ≤ 305,000 nano → cap ≤ 200; tokens: 10 + cap ≤ 300 → 290
	if err != nil || d != nil || res.Cap != 200 {
		t.Fatalf("%+v %+v %v", res, d, err)
	}
	r.ID = newID(t)
	_, d, err = s.Reserve(ctx, r)
	if err != nil || d == nil || d.Scope != "model" || d.Window != "cpd" || !d.Cost() {
		t.Fatalf("the cost budget: %+v %v", d, err)
	}
}

func TestMinuteRateIsGCRAWithTheTokenCountAsCost(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "tpm-" + newID(t)
	l := Limits{TokensPerMinute: 600} // 10 tokens a second
	r, d, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 500))
	if err != nil || d != nil || !(r.Headers.Limit == 600 && r.Headers.Remaining == 0 && r.Headers.Reset > 59*time.Second) {
		t.Fatalf("%+v %+v %v", r, d, err)
	}
	_, d, err = s.Reserve(ctx, req(t, sub, l, 5, 1, 5))
	if err != nil || d == nil || !d.Rate() || d.RetryAfter < 900*time.Millisecond || d.RetryAfter > 1100*time.Millisecond {
		t.Fatalf("10 tokens need ~1 s: %+v %v", d, err)
	}
	// alone larger than the minute: never
	_, d, _ = s.Reserve(ctx, req(t, sub, l, 601, 1, 1))
	if d == nil || d.RetryAfter >= 0 {
		t.Fatalf("a request above the limit: %+v", d)
	}
	// settle 600 reserved as 100 used: 500 tokens back in the bucket
	if _, err := s.Settle(ctx, r, 60, 40); err != nil {
		t.Fatal(err)
	}
	if r2, d, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 390)); err != nil || d != nil {
		t.Fatalf("after the refund: %+v %+v %v", r2, d, err)
	}
}

func TestEmbeddingsReserveTheirInputOnly(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "emb-" + newID(t)
	r := req(t, sub, Limits{TokensPerDay: 100}, 60, 1, 0)
	r.DefaultCap = 0
	res, d, err := s.Reserve(ctx, r)
	if err != nil || d != nil || res.Cap != 0 || res.Tokens != 60 {
		t.Fatalf("%+v %+v %v", res, d, err)
	}
	r.ID = newID(t)
	if _, d, _ := s.Reserve(ctx, r); d == nil || d.Requested != 60 {
		t.Fatalf("60 more of 100: %+v", d)
	}
}

// TestHeadersDescribeTheTightestTokenWindow: a generous minute rate and a
// nearly spent day: the headers show the day.
func TestHeadersDescribeTheTightestTokenWindow(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "hdr-" + newID(t)
	l := Limits{TokensPerMinute: 200000, TokensPerDay: 1000}
	r, d, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 500))
	if err != nil || d != nil {
		t.Fatal(err, d)
	}
	if r.Headers.Limit != 1000 || r.Headers.Remaining != 400 || r.Headers.Reset <= time.Minute {
		t.Fatalf("%+v: want the day window (1000, 400 left, reset at the end of the UTC day)", r.Headers)
	}
	r, _, _ = s.Reserve(ctx, req(t, sub, Limits{TokensPerMinute: 600, TokensPerDay: 100000}, 10, 1, 10))
	if r == nil || r.Headers.Limit != 600 {
		t.Fatalf("%+v: want the minute rate", r)
	}
}

func TestOvershootIsChargedAndCounted(t *testing.T) {
	s, rdb := realRedis(t)
	ctx := context.Background()
	sub := "over-" + newID(t)
	l := Limits{TokensPerDay: 1000}
	r, _, err := s.Reserve(ctx, req(t, sub, l, 10, 1, 10))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Settle(ctx, r, 10, 30)
	if err != nil || st.Overshoot != 20 || st.Tokens != 40 {
		t.Fatalf("%+v %v", st, err)
	}
	day, _, _, _ := periods(time.Now())
	if used, _ := rdb.HGet(ctx, prefix(sub)+"u:d:"+day, "t").Int64(); used != 40 {
		t.Fatalf("the day counter holds %d, want 40", used)
	}
}

// TestNeverExceededUnderConcurrency: 64 goroutines on two clients (two
// replicas) reserve and settle against one budget; the charged usage
// never passes it.
func TestNeverExceededUnderConcurrency(t *testing.T) {
	a, _ := realRedis(t)
	b, _ := realRedis(t)
	ctx := context.Background()
	sub := "conc-" + newID(t)
	l := Limits{TokensPerDay: 2000}
	var used, granted atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			for j := 0; j < 4; j++ {
				r, d, err := s.Reserve(ctx, req(t, sub, l, 20, int64(1+i%3), int64(10+i%40)))
				if err != nil {
					t.Error(err)
					return
				}
				if d != nil {
					continue
				}
				granted.Add(1)
				// the upstream uses at most the reservation
				actual := r.Cap * r.N * int64(j) / 3
				if _, err := s.Settle(ctx, r, 15, actual); err != nil {
					t.Error(err)
				}
				used.Add(15 + actual)
			}
		}()
	}
	wg.Wait()
	if used.Load() > 2000 {
		t.Fatalf("%d tokens used of a 2000-token budget", used.Load())
	}
	if granted.Load() == 0 {
		t.Fatal("nothing granted")
	}
	t.Logf("%d granted, %d tokens used of 2000", granted.Load(), used.Load())
}

func TestSweepChargesAnUnsettledReservationInFullOnce(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "sweep-" + newID(t)
	r, _, err := s.Reserve(ctx, req(t, sub, Limits{TokensPerDay: 1000}, 10, 1, 90))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Track(ctx, r); err != nil {
		t.Fatal(err)
	}
	later := NewStore(s.rdb, time.Minute)
	later.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	swept, err := later.Sweep(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var mine []Settlement
	for _, st := range swept {
		if st.Record.ID == r.ID {
			mine = append(mine, st)
		}
	}
	if len(mine) != 1 || mine[0].Tokens != 100 || mine[0].Record.Subject != sub {
		t.Fatalf("swept %+v", mine)
	}
	if st, err := s.Settle(ctx, r, 1, 1); err != nil || st.Applied {
		t.Fatalf("a settlement after the sweep applied: %+v %v", st, err)
	}
	again, _ := later.Sweep(ctx, 1000)
	for _, st := range again {
		if st.Record.ID == r.ID {
			t.Fatal("swept twice")
		}
	}
}

func TestSubjectsKeepTheirKeysInOneSlot(t *testing.T) {
	for _, sub := range []string{"a1b2", "weird}{sub", "x@y"} {
		p := prefix(sub)
		open := len("eg:budget:{")
		if p[:open] != "eg:budget:{" || p[len(p)-2:] != "}:" {
			t.Fatalf("%q", p)
		}
		inner := p[open : len(p)-2]
		for _, r := range inner {
			if r == '{' || r == '}' {
				t.Fatalf("%q: a brace inside the tag", p)
			}
		}
	}
}

// TestReservationsOnARedisCluster: a request's keys share one slot, so the
// scripts run on Redis Cluster.
func TestReservationsOnARedisCluster(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	s := NewStore(rdb, time.Minute)
	ctx := context.Background()
	for i := range 20 {
		sub := "cl-" + newID(t)
		r := req(t, sub, Limits{TokensPerMinute: 5000, TokensPerDay: 1000}, 10, 1, 0)
		r.KeyID = "k"
		r.Scopes = append(r.Scopes, Scope{Kind: "key", Part: "k:k", Limits: Limits{TokensPerDay: 500 + int64(i)}},
			Scope{Kind: "model", Part: "m:org/model:7b", Limits: Limits{TokensPerMonth: 700}})
		res, d, err := s.Reserve(ctx, r)
		if err != nil || d != nil || res.Cap != 490+int64(i) {
			t.Fatalf("%+v %+v %v", res, d, err)
		}
		if err := s.Track(ctx, res); err != nil {
			t.Fatal(err)
		}
		if st, err := s.Settle(ctx, res, 5, 5); err != nil || !st.Applied {
			t.Fatalf("%+v %v", st, err)
		}
	}
}

func TestStoredLimitsReplaceTheGrantsAndRestrictModels(t *testing.T) {
	s, _ := realRedis(t)
	ctx := context.Background()
	sub := "stored-" + newID(t)
	r := req(t, sub, Limits{TokensPerDay: 100000}, 10, 1, 0)
	r.Scopes[0].Stored = true
	r.KeyID = "kk"
	r.Scopes = append(r.Scopes, Scope{Kind: "key", Part: "k:kk", Stored: true})
	// nothing stored: the role's 100000 a day, the key unlimited
	if res, d, err := s.Reserve(ctx, r); err != nil || d != nil || res.Cap != 512 {
		t.Fatalf("%+v %+v %v", res, d, err)
	}
	// an administrator lowers the user's budget; the key gets its own
	if err := s.SetLimits(ctx, sub, "u", &StoredLimits{Limits: Limits{TokensPerDay: 600}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimits(ctx, sub, "k:kk", &StoredLimits{Limits: Limits{TokensPerMinute: 50}, Models: []string{"m", "other"}}); err != nil {
		t.Fatal(err)
	}
	r.ID = newID(t)
	res, d, err := s.Reserve(ctx, r)
	if err != nil || d != nil || res.Cap != 40 || res.Headers.Limit != 50 {
		t.Fatalf("the key's 50 a minute: %+v %+v %v", res, d, err)
	}
	r.ID, r.Model = newID(t), "forbidden"
	var mna *ModelNotAllowedError
	if _, _, err := s.Reserve(ctx, r); !errors.As(err, &mna) || mna.Scope != "key" {
		t.Fatalf("a model outside the key's list: %v", err)
	}
	// the override removed: the role's budget again
	if err := s.SetLimits(ctx, sub, "u", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimits(ctx, sub, "k:kk", nil); err != nil {
		t.Fatal(err)
	}
	r.ID, r.Model = newID(t), "m"
	if res, d, err := s.Reserve(ctx, r); err != nil || d != nil || res.Cap != 512 {
		t.Fatalf("%+v %+v %v", res, d, err)
	}
}

// TestRefusalsCausedByReservationsInFlightRetrySoon: a refusal that only
// reservations still in flight cause says so and asks to retry in a
// second, not at the end of the day; their settlement (or the sweep)
// releases them.
func TestRefusalsCausedByReservationsInFlightRetrySoon(t *testing.T) {
	s, rdb := realRedis(t)
	ctx := context.Background()
	sub := "inflight-" + newID(t)
	l := Limits{TokensPerDay: 1000}
	a, _, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 800))
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 300))
	if err != nil || d == nil || d.InFlight != 900 || d.RetryAfter != time.Second {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := s.Settle(ctx, a, 50, 50); err != nil {
		t.Fatal(err)
	}
	if r, d, err := s.Reserve(ctx, req(t, sub, l, 100, 1, 300)); err != nil || d != nil {
		t.Fatalf("after the settlement: %+v %+v %v", r, d, err)
	}
	// a day that is really used up: retry tomorrow
	_, d, _ = s.Reserve(ctx, req(t, sub, l, 100, 1, 850))
	if d == nil || d.RetryAfter <= time.Second {
		t.Fatalf("%+v", d)
	}
	// the sweep releases what it charges in full
	b, _, err := s.Reserve(ctx, req(t, sub, l, 10, 1, 10))
	if err != nil || b == nil {
		t.Fatal(err)
	}
	if err := s.Track(ctx, b); err != nil {
		t.Fatal(err)
	}
	later := NewStore(s.rdb, time.Minute)
	later.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := later.Sweep(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	day, _, _, _ := periods(time.Now())
	if o, _ := rdb.HGet(ctx, prefix(sub)+"u:d:"+day, "ot").Int64(); o != 300+100 {
		// the second request (400 reserved) is still in flight; the swept one is not
		t.Fatalf("outstanding %d, want 400", o)
	}
}

// TestStatusReadsWhatTheNextReservationSees: the windows of every scope
// after reservations and settlements, stored limits replacing the passed
// ones (as the script does), the minute bucket's GCRA state, and nothing
// for an unlimited scope.
func TestStatusReadsWhatTheNextReservationSees(t *testing.T) {
	s, _ := realRedis(t)
	statusSuite(t, s)
}

// TestStatusOnARedisCluster: the same on a Cluster (one slot per subject).
func TestStatusOnARedisCluster(t *testing.T) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	statusSuite(t, NewStore(rdb, time.Minute))
}

func statusSuite(t *testing.T, s *Store) {
	ctx := context.Background()
	sub := "status-" + newID(t)
	user := Limits{TokensPerMinute: 6000, TokensPerDay: 1000, NanoUSDPerMonth: 5 * NanoPerUSD}
	scopes := []Scope{{Kind: "user", Part: "u", Limits: user, Stored: true}, {Kind: "key", Part: "k:kk", Stored: true},
		{Kind: "model", Part: "m:m", Limits: Limits{TokensPerMonth: 700}}}
	// nothing used yet
	st, err := s.Status(ctx, sub, scopes)
	if err != nil || len(st) != 3 {
		t.Fatalf("%+v %v", st, err)
	}
	if st[0].Stored != nil || len(st[0].Windows) != 3 || len(st[1].Windows) != 0 || len(st[2].Windows) != 1 {
		t.Fatalf("before any use: %+v", st)
	}
	for _, w := range st[0].Windows {
		if w.Used != 0 || w.Remaining != w.Limit {
			t.Fatalf("unused window %+v", w)
		}
	}
	// one reservation settled at 30 tokens, one still in flight (110)
	r := req(t, sub, user, 10, 1, 20)
	r.KeyID, r.Scopes = "kk", scopes
	a, d, err := s.Reserve(ctx, r)
	if err != nil || d != nil {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := s.Settle(ctx, a, 10, 20); err != nil {
		t.Fatal(err)
	}
	r.ID, r.Cap = newID(t), 100
	if _, d, err := s.Reserve(ctx, r); err != nil || d != nil {
		t.Fatalf("%+v %v", d, err)
	}
	st, err = s.Status(ctx, sub, scopes)
	if err != nil {
		t.Fatal(err)
	}
	w := windows(st[0])
	if w["tpd"].Used != 140 || w["tpd"].Remaining != 860 || w["tpd"].Reset <= 0 || w["tpd"].Reset > 24*time.Hour {
		t.Fatalf("day: %+v", w["tpd"])
	}
	// the bucket: 140 tokens of 6000 a minute, refilled in 140×10 ms
	if w["tpm"].Used < 139 || w["tpm"].Used > 140 || w["tpm"].Reset > 1400*time.Millisecond || w["tpm"].Reset < 1200*time.Millisecond {
		t.Fatalf("minute: %+v", w["tpm"])
	}
	// cost: 10 prompt × 500 + 20 × 1500, then 10 × 500 + 100 × 1500 in flight
	if w["cpmo"].Used != 35_000+155_000 || w["cpmo"].Limit != 5*NanoPerUSD || w["cpmo"].Reset < w["tpd"].Reset {
		t.Fatalf("month cost: %+v", w["cpmo"])
	}
	if m := windows(st[2])["tpmo"]; m.Used != 140 || m.Remaining != 560 {
		t.Fatalf("model: %+v", m)
	}
	// an override lowers the user's day and drops the rest; the key gets its own
	if err := s.SetLimits(ctx, sub, "u", &StoredLimits{Limits: Limits{TokensPerDay: 100}, Models: []string{"m"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimitsUntil(ctx, sub, "k:kk", &StoredLimits{Limits: Limits{TokensPerMonth: 50}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st, err = s.Status(ctx, sub, scopes)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Stored == nil || st[0].Limits.TokensPerDay != 100 || len(st[0].Windows) != 1 || st[0].Stored.Models[0] != "m" {
		t.Fatalf("override: %+v", st[0])
	}
	// the day was counted while it was limited: 140 of 100 used, none left
	if d := st[0].Windows[0]; d.Used != 140 || d.Remaining != 0 {
		t.Fatalf("override day: %+v", d)
	}
	// the key's month was never limited before: its counter starts now
	if k := windows(st[1])["tpmo"]; st[1].Stored == nil || k.Limit != 50 || k.Used != 0 {
		t.Fatalf("key: %+v", st[1])
	}
	// and the next reservation sees the same: refused by the user's day
	r.ID, r.Cap = newID(t), 1
	if _, d, err := s.Reserve(ctx, r); err != nil || d == nil || d.Scope != "user" || d.Window != "tpd" || d.Limit != 100 {
		t.Fatalf("%+v %v", d, err)
	}
}

func windows(s ScopeStatus) map[string]Window {
	m := map[string]Window{}
	for _, w := range s.Windows {
		m[w.Name] = w
	}
	return m
}

func TestSetLimitsUntilExpiresTheEntryAfterItsEnd(t *testing.T) {
	s, rdb := realRedis(t)
	ctx := context.Background()
	sub := "until-" + newID(t)
	end := time.Now().Add(10 * time.Minute)
	if err := s.SetLimitsUntil(ctx, sub, "k:a", &StoredLimits{Limits: Limits{TokensPerDay: 5}}, end); err != nil {
		t.Fatal(err)
	}
	ttl := rdb.TTL(ctx, limitsKey(sub, "k:a")).Val()
	if ttl < limitsSlack || ttl > limitsSlack+10*time.Minute+time.Second {
		t.Fatalf("ttl %v", ttl)
	}
	// rewritten without an end: no expiry; removed: gone
	if err := s.SetLimits(ctx, sub, "k:a", &StoredLimits{Models: []string{"m"}}); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.TTL(ctx, limitsKey(sub, "k:a")).Val(); ttl != -1 {
		t.Fatalf("ttl %v", ttl)
	}
	if l, err := s.Limits(ctx, sub, "k:a"); err != nil || l == nil || l.Limits.TokensPerDay != 0 || l.Models[0] != "m" {
		t.Fatalf("%+v %v", l, err)
	}
	if err := s.SetLimitsUntil(ctx, sub, "k:a", nil, end); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Limits(ctx, sub, "k:a"); err != nil || l != nil {
		t.Fatalf("%+v %v", l, err)
	}
}

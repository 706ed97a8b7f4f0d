package ratelimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// decider is what every limiter implements; the contract suite runs one
// schedule against each and expects identical results.
type decider interface {
	AllowN(ctx context.Context, subject string, p *Policy, cost int) (Result, error)
}

var (
	_ decider = (*Local)(nil)
	_ decider = (*Limiter)(nil)
)

type contractStep struct {
	advance time.Duration
	subject string
	cost    int // 0 means 1
	repeat  int // 0 means once
	allow   bool
	want    string // describe(result), checked on the last repeat when set
	wantErr error
}

type contractCase struct {
	name   string
	policy string
	steps  []contractStep
}

// Limits have emission intervals of seconds or more: in the Redis variants
// keys still expire on the server's real clock (PX), which must not overtake
// the injected one while a schedule runs.
var contractCases = []contractCase{
	{
		name:   "burst then deny then refill one cell per interval",
		policy: "10/min",
		steps: []contractStep{
			{subject: "alice", repeat: 9, allow: true},
			{subject: "alice", allow: true, want: "allowed=true decider=0 [minute rem=0 reset=1m0s retry=0s]"},
			{subject: "alice", allow: false, want: "allowed=false decider=0 [minute rem=0 reset=1m0s retry=6s]"},
			{advance: 2 * time.Second, subject: "alice", allow: false, want: "allowed=false decider=0 [minute rem=0 reset=58s retry=4s]"},
			{advance: 3999 * time.Millisecond, subject: "alice", allow: false, want: "allowed=false decider=0 [minute rem=0 reset=54.001s retry=1ms]"},
			{advance: time.Millisecond, subject: "alice", allow: true, want: "allowed=true decider=0 [minute rem=0 reset=1m0s retry=0s]"},
			{subject: "bob", allow: true, want: "allowed=true decider=0 [minute rem=9 reset=6s retry=0s]"},
			{advance: time.Minute, subject: "alice", allow: true, want: "allowed=true decider=0 [minute rem=9 reset=6s retry=0s]"},
		},
	},
	{
		name:   "several limits are charged all or nothing",
		policy: "2/min, 3/h",
		steps: []contractStep{
			{subject: "alice", allow: true, want: "allowed=true decider=0 [minute rem=1 reset=30s retry=0s] [hour rem=2 reset=20m0s retry=0s]"},
			{subject: "alice", allow: true, want: "allowed=true decider=0 [minute rem=0 reset=1m0s retry=0s] [hour rem=1 reset=40m0s retry=0s]"},
			// Denied by the minute: the hour is not charged.
			{subject: "alice", allow: false, want: "allowed=false decider=0 [minute rem=0 reset=1m0s retry=30s] [hour rem=1 reset=40m0s retry=0s]"},
			// Both at zero remaining: the tightest is the one with the longest reset.
			{advance: 30 * time.Second, subject: "alice", allow: true, want: "allowed=true decider=1 [minute rem=0 reset=1m0s retry=0s] [hour rem=0 reset=59m30s retry=0s]"},
			// Denied by the hour: the minute is not charged (2 remaining).
			{advance: time.Minute, subject: "alice", allow: false, want: "allowed=false decider=1 [minute rem=2 reset=0s retry=0s] [hour rem=0 reset=58m30s retry=18m30s]"},
			{advance: time.Minute, subject: "alice", allow: false, want: "allowed=false decider=1 [minute rem=2 reset=0s retry=0s] [hour rem=0 reset=57m30s retry=17m30s]"},
			{advance: 30 * time.Minute, subject: "alice", allow: true, want: "allowed=true decider=1 [minute rem=1 reset=30s retry=0s] [hour rem=0 reset=47m30s retry=0s]"},
		},
	},
	{
		name:   "cost charges several cells",
		policy: "10/min",
		steps: []contractStep{
			{subject: "carol", cost: 4, allow: true, want: "allowed=true decider=0 [minute rem=6 reset=24s retry=0s]"},
			{subject: "carol", cost: 7, allow: false, want: "allowed=false decider=0 [minute rem=6 reset=24s retry=6s]"},
			{subject: "carol", cost: 6, allow: true, want: "allowed=true decider=0 [minute rem=0 reset=1m0s retry=0s]"},
			{advance: 12 * time.Second, subject: "carol", cost: 2, allow: true, want: "allowed=true decider=0 [minute rem=0 reset=1m0s retry=0s]"},
			{subject: "carol", allow: false, want: "allowed=false decider=0 [minute rem=0 reset=1m0s retry=6s]"},
			{subject: "carol", cost: 10, allow: false, want: "allowed=false decider=0 [minute rem=0 reset=1m0s retry=1m0s]"},
		},
	},
	{
		name:   "burst smaller than rate",
		policy: "60/min burst 2",
		steps: []contractStep{
			{subject: "dave", repeat: 2, allow: true, want: "allowed=true decider=0 [minute rem=0 reset=2s retry=0s]"},
			{subject: "dave", allow: false, want: "allowed=false decider=0 [minute rem=0 reset=2s retry=1s]"},
			{advance: 10 * time.Second, subject: "dave", allow: true, want: "allowed=true decider=0 [minute rem=1 reset=1s retry=0s]"},
		},
	},
	{
		name:   "long subjects are hashed but stay distinct",
		policy: "1/min",
		steps: []contractStep{
			{subject: strings.Repeat("x", 300) + "a", allow: true},
			{subject: strings.Repeat("x", 300) + "a", allow: false},
			{subject: strings.Repeat("x", 300) + "b", allow: true},
			{subject: "{tag}with}braces{", allow: true},
			{subject: "{tag}with}braces{", allow: false},
		},
	},
	{
		// Keys of several limits must share one hash tag on a Cluster,
		// whatever braces the subject holds.
		name:   "subjects with braces decide several limits and stay distinct",
		policy: "1/min, 10/h",
		steps: []contractStep{
			{subject: "}leading", allow: true},
			{subject: "}leading", allow: false},
			{subject: "}leading2", allow: true},
			{subject: "a}b", allow: true},
			{subject: "a}c", allow: true},
			{subject: "a}c", allow: false},
			{subject: "{x}", allow: true},
			{subject: "{}", allow: true},
			{subject: "{}", allow: false},
		},
	},
	{
		name:   "invalid input is an error, never a decision",
		policy: "10/min, 5/h",
		steps: []contractStep{
			{subject: "", wantErr: ErrInvalidSubject},
			{subject: "erin", cost: -1, wantErr: ErrInvalidCost},
			{subject: "erin", cost: 6, wantErr: ErrInvalidCost},
			{subject: "erin", cost: 5, allow: true, want: "allowed=true decider=1 [minute rem=5 reset=30s retry=0s] [hour rem=0 reset=1h0m0s retry=0s]"},
		},
	},
}

// runContract runs every contract case against limiters made by mk, each on
// a fresh clock (and fresh state).
func runContract(t *testing.T, mk func(t *testing.T, clock *fakeClock) decider) {
	for _, tc := range contractCases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			d := mk(t, clock)
			p := mustLimits(t, tc.policy)
			ctx := context.Background()
			for i, st := range tc.steps {
				clock.Advance(st.advance)
				cost := st.cost
				if cost == 0 {
					cost = 1
				}
				for r := range max(st.repeat, 1) {
					res, err := d.AllowN(ctx, st.subject, p, cost)
					if st.wantErr != nil {
						if !errors.Is(err, st.wantErr) {
							t.Fatalf("step %d: err = %v, want %v", i, err, st.wantErr)
						}
						continue
					}
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if res.Allowed != st.allow {
						t.Fatalf("step %d.%d: allowed = %t, want %t (%s)", i, r, res.Allowed, st.allow, describe(res))
					}
					if st.want != "" && r == max(st.repeat, 1)-1 {
						if got := describe(res); got != st.want {
							t.Fatalf("step %d:\n got %s\nwant %s", i, got, st.want)
						}
					}
				}
			}
		})
	}
}

func TestContractLocal(t *testing.T) {
	runContract(t, func(t *testing.T, clock *fakeClock) decider {
		l, err := NewLocal(LocalConfig{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// The Limiter with Redis unreachable and the "local" fail policy must give
// the same answers: the fallback has the same semantics.
func TestContractRedisDownLocalFallback(t *testing.T) {
	runContract(t, func(t *testing.T, clock *fakeClock) decider {
		l := newTestLimiter(t, "127.0.0.1:1", func(c *Config) { c.Timeout = 200 * time.Millisecond })
		l.now = clock.Now
		return l
	})
}

func TestContractRedis(t *testing.T) {
	addr := redisAddr(t)
	variants := []struct {
		name   string
		mutate func(*Config)
	}{
		{"deny cache", nil},
		{"no deny cache", func(c *Config) { c.DenyCacheSize = -1 }},
		{"batched", func(c *Config) { c.Batch = true; c.DenyCacheSize = -1 }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			runContract(t, func(t *testing.T, clock *fakeClock) decider {
				l := newTestLimiter(t, addr, func(c *Config) {
					c.Timeout = time.Second // -race on a busy machine; timeouts have their own test
					if v.mutate != nil {
						v.mutate(c)
					}
				})
				l.now = clock.Now
				l.scriptNow = true
				return l
			})
		})
	}
}

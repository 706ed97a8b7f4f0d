package redisratelimit

import (
	"net"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

func redisAddr(t *testing.T) string { t.Helper(); return testenv.RedisAddr(t) }

func TestTwoInstancesShareOneBudgetOnRedis(t *testing.T) {
	addr := redisAddr(t)
	ns := "it-" + time.Now().Format("150405.000000000")
	// A generous timeout and the deny policy: this test is about the shared
	// budget, and a round trip over the default 50 ms on a loaded CI machine
	// would otherwise fall back to two local budgets (10 of 10 allowed).
	cfg := map[string]any{"second": 5, "namespace": ns, "redis": map[string]any{"addresses": []string{addr}},
		"timeout_ms": 2000, "on_redis_error": "deny"}
	a, b := decode(t, kongJSON(t, cfg)), decode(t, kongJSON(t, cfg))
	u := &identity.Identity{Subject: "shared-user"}
	allowed := 0
	for i := range 10 {
		f := request(u, "", nil)
		[]*Config{a, b}[i%2].Handle(f)
		switch f.ExitStatus {
		case 0:
			allowed++
		case 429:
		default:
			t.Fatalf("status %d %s", f.ExitStatus, f.ExitBody)
		}
	}
	if allowed != 5 {
		t.Fatalf("%d of 10 allowed across two instances, want exactly 5", allowed)
	}
}

func TestDeadRedisFollowsTheFailPolicyWithoutHanging(t *testing.T) {
	// A port that accepts nothing: grab one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for policy, want := range map[string]int{"deny": 503, "allow": 0, "local": 0} {
		t.Run(policy, func(t *testing.T) {
			c := decode(t, kongJSON(t, map[string]any{"second": 2, "redis": map[string]any{"addresses": []string{dead}}, "on_redis_error": policy, "timeout_ms": 30}))
			start := time.Now()
			f := request(&identity.Identity{Subject: "u"}, "", nil)
			c.Handle(f)
			if f.ExitStatus != want {
				t.Fatalf("status %d %s, want %d", f.ExitStatus, f.ExitBody, want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("decision took %s", d)
			}
			if policy == "local" { // the in-process limiter still limits
				for range 2 {
					f = request(&identity.Identity{Subject: "u"}, "", nil)
					c.Handle(f)
				}
				if f.ExitStatus != 429 {
					t.Fatalf("local fallback did not limit: %d", f.ExitStatus)
				}
			}
		})
	}
}

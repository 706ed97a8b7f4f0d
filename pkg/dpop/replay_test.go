package dpop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeguard/edgeguard/pkg/testenv"
)

func key(i int) [16]byte {
	var k [16]byte
	copy(k[:], fmt.Sprintf("%016d", i))
	return k
}

// storeContract is what every ReplayStore does.
func storeContract(t *testing.T, s ReplayStore, wait func(time.Duration)) {
	ctx := context.Background()
	k := key(int(time.Now().UnixNano() % 1e15))
	if fresh, err := s.Remember(ctx, k, 300*time.Millisecond); !fresh || err != nil {
		t.Fatalf("first: %v %v", fresh, err)
	}
	if fresh, err := s.Remember(ctx, k, 300*time.Millisecond); fresh || err != nil {
		t.Fatalf("second: %v %v", fresh, err)
	}
	wait(400 * time.Millisecond)
	if fresh, err := s.Remember(ctx, k, time.Second); !fresh || err != nil {
		t.Fatalf("after the ttl: %v %v", fresh, err)
	}
	// concurrent first uses: exactly one is fresh
	k2 := key(int(time.Now().UnixNano()%1e15) + 1)
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if fresh, err := s.Remember(ctx, k2, time.Second); fresh && err == nil {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if n.Load() != 1 {
		t.Fatalf("%d concurrent first uses were fresh, want 1", n.Load())
	}
}

func TestLocalStoreContract(t *testing.T) {
	c := &clock{t: t0}
	storeContract(t, NewLocalStore(100, c.now), c.add)
}

func TestRedisStoreContract(t *testing.T) {
	cl := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { cl.Close() })
	storeContract(t, &RedisStore{Client: cl, Prefix: "edgeguard:test:dpop:" + t.Name() + ":"}, time.Sleep)
}

func TestRedisClusterStoreContract(t *testing.T) {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t)})
	t.Cleanup(func() { cl.Close() })
	storeContract(t, &RedisStore{Client: cl, Prefix: "edgeguard:test:dpop:" + t.Name() + ":"}, time.Sleep)
}

func TestLocalStoreIsBoundedAndForgetsTheOldestFirst(t *testing.T) {
	c := &clock{t: t0}
	s := NewLocalStore(3, c.now)
	ctx := context.Background()
	for i := range 3 {
		if fresh, _ := s.Remember(ctx, key(i), time.Minute); !fresh {
			t.Fatal(i)
		}
	}
	// full: key 3 evicts key 0, the oldest
	if fresh, _ := s.Remember(ctx, key(3), time.Minute); !fresh {
		t.Fatal("3")
	}
	if s.Len() != 3 {
		t.Fatalf("len %d", s.Len())
	}
	if fresh, _ := s.Remember(ctx, key(1), time.Minute); fresh {
		t.Fatal("key 1 was forgotten before key 0")
	}
	if fresh, _ := s.Remember(ctx, key(0), time.Minute); !fresh {
		t.Fatal("key 0 should have been evicted")
	}
	// expired entries go first, and a key recorded again is not dropped by
	// its old slot
	c.add(2 * time.Minute)
	if fresh, _ := s.Remember(ctx, key(2), time.Minute); !fresh {
		t.Fatal("expired key 2 is not fresh")
	}
	for i := 10; i < 12; i++ {
		s.Remember(ctx, key(i), time.Minute)
	}
	if fresh, _ := s.Remember(ctx, key(2), time.Minute); fresh {
		t.Fatal("key 2, recorded again, was dropped with its expired slot")
	}
	for i := range 10_000 {
		s.Remember(ctx, key(100+i), time.Minute)
	}
	if s.Len() > 3 {
		t.Fatalf("len %d > 3", s.Len())
	}
}

// failingStore is a shared store that is away.
type failingStore struct{ calls atomic.Int64 }

func (f *failingStore) Remember(context.Context, [16]byte, time.Duration) (bool, error) {
	f.calls.Add(1)
	return false, errors.New("connection refused")
}

func TestGuardPolicyWhenTheSharedStoreIsAway(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []string{"", OnErrorLocal, OnErrorDeny} {
		t.Run("policy="+policy, func(t *testing.T) {
			var failures atomic.Int64
			g := &ReplayGuard{Local: NewLocalStore(10, nil), Shared: &failingStore{}, OnError: policy,
				Failed: func(error) { failures.Add(1) }}
			if err := g.Validate(); err != nil {
				t.Fatal(err)
			}
			err := g.Check(ctx, key(1), time.Minute)
			if policy == OnErrorDeny {
				if ReasonOf(err) != ReasonReplayUnavailable || ReasonReplayUnavailable.Status() != 503 {
					t.Fatalf("deny: %v", err)
				}
			} else if err != nil {
				t.Fatalf("local: %v", err)
			}
			// a replay to this node is refused either way, without asking the shared store
			calls := g.Shared.(*failingStore).calls.Load()
			if err := g.Check(ctx, key(1), time.Minute); ReasonOf(err) != ReasonReplayed {
				t.Fatalf("replay to the same node: %v", err)
			}
			if g.Shared.(*failingStore).calls.Load() != calls || failures.Load() != 1 {
				t.Fatal("the shared store was asked about a local replay")
			}
		})
	}
	if err := (&ReplayGuard{Local: NewLocalStore(1, nil), OnError: "open"}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
	if err := (&ReplayGuard{}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
}

// Two edge nodes — each its own local store — on one Redis (a single node
// and a Cluster): a flood of the same proof to both is accepted exactly
// once.
func TestAFloodOfReplaysToTwoNodesIsAcceptedOnce(t *testing.T) {
	for _, kind := range []string{"redis", "cluster"} {
		t.Run(kind, func(t *testing.T) {
			var cl redis.UniversalClient
			if kind == "redis" {
				cl = redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
			} else {
				cl = redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t)})
			}
			t.Cleanup(func() { cl.Close() })
			shared := &RedisStore{Client: cl, Prefix: "edgeguard:test:dpop:flood:" + fmt.Sprint(time.Now().UnixNano()) + ":"}
			node := func() *Verifier {
				v, err := New(Config{Replay: &ReplayGuard{Local: NewLocalStore(100, nil), Shared: shared, OnError: OnErrorDeny, Timeout: time.Second}})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			a, b := node(), node()
			k := mustKey(t, "ec")
			req := request(k)
			for round := range 5 {
				p, _ := k.Proof(testMethod, testURL, ProofOptions{AccessToken: testToken})
				var ok, replayed atomic.Int64
				var wg sync.WaitGroup
				for i := range 40 {
					v := a
					if i%2 == 1 {
						v = b
					}
					wg.Go(func() {
						switch err := v.Verify(context.Background(), p, req); ReasonOf(err) {
						case "":
							if err == nil {
								ok.Add(1)
							}
						case ReasonReplayed:
							replayed.Add(1)
						default:
							t.Errorf("round %d: %v", round, err)
						}
					})
				}
				wg.Wait()
				if ok.Load() != 1 || replayed.Load() != 39 {
					t.Fatalf("round %d: %d accepted, %d replays; want 1 and 39", round, ok.Load(), replayed.Load())
				}
			}
		})
	}
}

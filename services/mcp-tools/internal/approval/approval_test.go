package approval

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStore(cfg Config) (*Store, *fakeClock) {
	clk := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg.Now = clk.Now
	return New(cfg), clk
}

var (
	alice = User{Subject: "alice"}
	bob   = User{Subject: "bob"}
	carol = User{Subject: "carol", Username: "carol"}
)

func TestIDsHaveTheDocumentedShape(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !ValidID(id) || len(id) != IDLen || seen[id] {
			t.Fatalf("id %q (valid %v, dup %v)", id, ValidID(id), seen[id])
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "apr_", "apr_AAAAAAAAAAAAAAAAAAAAAAAAAA", "apr_aaaaaaaaaaaaaaaaaaaaaaaaa1",
		"apr_aaaaaaaaaaaaaaaaaaaaaaaaa", "apr_aaaaaaaaaaaaaaaaaaaaaaaaaaa", "xpr_aaaaaaaaaaaaaaaaaaaaaaaaaa",
		"apr_aaaaaaaaaaaaaaaaaaaaaaaa/.", "apr_aaaaaaaaaaaaaaaaaaaaaaaaa\x00"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestTheLifecycleOfAnApproval(t *testing.T) {
	s, clk := newStore(Config{TTL: 10 * time.Minute})
	code := []byte("print(1)")
	a, err := s.Request(alice, "run_python", code)
	if err != nil || a.State != StatePending || a.ExpiresAt != clk.Now().Add(10*time.Minute) || a.Payload != "print(1)" {
		t.Fatalf("request = %+v, %v", a, err)
	}
	if _, err := s.Consume(a.ID, alice, "run_python", code); !errors.Is(err, ErrPending) {
		t.Fatalf("consume pending: %v", err)
	}
	if _, err := s.Decide(a.ID, alice, true); !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("self approval: %v", err)
	}
	clk.Add(5 * time.Minute)
	d, err := s.Decide(a.ID, carol, true)
	if err != nil || d.State != StateApproved || d.DecidedBy.Subject != "carol" || d.ExpiresAt != clk.Now().Add(10*time.Minute) {
		t.Fatalf("decide = %+v, %v", d, err)
	}
	if _, err := s.Decide(a.ID, carol, false); !errors.Is(err, ErrNotPending) {
		t.Fatalf("decide twice: %v", err)
	}
	for _, tc := range []struct {
		name string
		u    User
		tool string
		code string
		want error
	}{
		{"another user", bob, "run_python", "print(1)", ErrNotFound},
		{"another tool", alice, "other_tool", "print(1)", ErrNotFound},
		{"other code", alice, "run_python", "print(2)", ErrPayloadChanged},
		{"code with a trailing newline", alice, "run_python", "print(1)\n", ErrPayloadChanged},
	} {
		if _, err := s.Consume(a.ID, tc.u, tc.tool, []byte(tc.code)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	u, err := s.Consume(a.ID, alice, "run_python", code)
	if err != nil || u.State != StateUsed || u.Payload != "" || u.PayloadHash != a.PayloadHash {
		t.Fatalf("consume = %+v, %v", u, err)
	}
	if _, err := s.Consume(a.ID, alice, "run_python", code); !errors.Is(err, ErrUsed) {
		t.Fatalf("consume twice: %v", err)
	}
}

func TestApprovalsExpire(t *testing.T) {
	s, clk := newStore(Config{TTL: time.Minute})
	a, _ := s.Request(alice, "run_python", []byte("x"))
	clk.Add(time.Minute)
	if got, _ := s.Get(a.ID); got.State != StateExpired {
		t.Fatalf("state %s", got.State)
	}
	if len(s.Pending()) != 0 {
		t.Fatal("expired approval listed as pending")
	}
	if _, err := s.Decide(a.ID, carol, true); !errors.Is(err, ErrExpired) {
		t.Fatalf("decide: %v", err)
	}
	if _, err := s.Consume(a.ID, alice, "run_python", []byte("x")); !errors.Is(err, ErrExpired) {
		t.Fatalf("consume: %v", err)
	}
	if _, err := s.Request(bob, "run_python", []byte("z")); err != nil { // sweeps
		t.Fatal(err)
	}
	if got, _ := s.Get(a.ID); got.Payload != "" || got.PayloadHash == "" {
		t.Fatalf("expired approval keeps its payload: %+v", got)
	}
	// one more TTL later it is gone (swept on the next request)
	clk.Add(time.Minute + time.Second)
	if _, err := s.Request(bob, "run_python", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after sweep: %v", err)
	}
}

func TestDeniedApprovalsCannotBeUsed(t *testing.T) {
	s, _ := newStore(Config{})
	a, _ := s.Request(alice, "run_python", []byte("x"))
	if d, err := s.Decide(a.ID, carol, false); err != nil || d.State != StateDenied || d.Payload != "" {
		t.Fatalf("deny = %+v, %v", d, err)
	}
	if _, err := s.Consume(a.ID, alice, "run_python", []byte("x")); !errors.Is(err, ErrDenied) {
		t.Fatalf("consume: %v", err)
	}
}

func TestStatusHidesOtherUsersApprovals(t *testing.T) {
	s, _ := newStore(Config{})
	a, _ := s.Request(alice, "run_python", []byte("x"))
	if _, err := s.Status(a.ID, bob); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob: %v", err)
	}
	if got, err := s.Status(a.ID, alice); err != nil || got.ID != a.ID {
		t.Fatalf("alice: %+v %v", got, err)
	}
}

func TestPendingApprovalsAreCapped(t *testing.T) {
	s, clk := newStore(Config{MaxPending: 3, MaxPendingPerUser: 2, TTL: time.Minute})
	for range 2 {
		if _, err := s.Request(alice, "t", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Request(alice, "t", []byte("x")); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("third for alice: %v", err)
	}
	if _, err := s.Request(bob, "t", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Request(carol, "t", []byte("x")); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("over the total: %v", err)
	}
	clk.Add(time.Minute) // all expired: room again
	if _, err := s.Request(alice, "t", []byte("x")); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestAnApprovalIsUsedOnceUnderConcurrency(t *testing.T) {
	s, _ := newStore(Config{})
	a, _ := s.Request(alice, "run_python", []byte("x"))
	if _, err := s.Decide(a.ID, carol, true); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := s.Consume(a.ID, alice, "run_python", []byte("x")); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 1 {
		t.Fatalf("%d consumers succeeded", n)
	}
}

func TestSnapshotsDoNotAliasTheStore(t *testing.T) {
	s, _ := newStore(Config{})
	a, _ := s.Request(alice, "run_python", []byte("x"))
	d, _ := s.Decide(a.ID, carol, true)
	d.DecidedBy.Subject = "mallory"
	if got, _ := s.Get(a.ID); got.DecidedBy.Subject != "carol" {
		t.Fatal("a snapshot changed the store")
	}
}

func TestInvalidIDsAreRefusedBeforeLookup(t *testing.T) {
	s, _ := newStore(Config{})
	for _, f := range []func(string) error{
		func(id string) error { _, err := s.Get(id); return err },
		func(id string) error { _, err := s.Decide(id, carol, true); return err },
		func(id string) error { _, err := s.Consume(id, alice, "t", nil); return err },
	} {
		if err := f(strings.Repeat("a", 30)); !errors.Is(err, ErrInvalidID) {
			t.Errorf("err = %v", err)
		}
	}
}

func FuzzValidID(f *testing.F) {
	f.Add("apr_abcdefghijklmnopqrstuvwxyz")
	f.Add("apr_aaaaaaaaaaaaaaaaaaaaaaaaa8")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidID(s) {
			return
		}
		if len(s) != IDLen || !strings.HasPrefix(s, IDPrefix) || strings.Trim(s[len(IDPrefix):], idChars) != "" {
			t.Fatalf("ValidID accepted %q", s)
		}
	})
}

// BenchmarkCycle is one approved run: request, decide, consume (the clock
// moves so that earlier approvals are swept, as in a long-running process).
func BenchmarkCycle(b *testing.B) {
	s, clk := newStore(Config{TTL: time.Minute})
	code := []byte(strings.Repeat("print(1)\n", 100))
	b.ReportAllocs()
	for b.Loop() {
		clk.Add(time.Minute)
		a, err := s.Request(alice, "run_python", code)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Decide(a.ID, carol, true); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Consume(a.ID, alice, "run_python", code); err != nil {
			b.Fatal(err)
		}
	}
}

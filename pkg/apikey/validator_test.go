package apikey

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
)

const clientA = "203.0.113.7"

func TestValidKeyIsCachedAndRejectionsAreCachedBriefly(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, nil)
	ctx := context.Background()
	good := mustGenerate(t, EnvLive)
	f.add(good, fakeKey{subject: "alice", roles: []string{"user"}})
	unknown := mustGenerate(t, EnvLive)

	id, err := v.Validate(ctx, clientA, good)
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{Subject: "alice", Username: "user-alice", RealmRoles: []string{"user"},
		AuthMethod: identity.MethodAPIKey, APIKeyID: good.KID()}
	if id.Subject != want.Subject || id.Username != want.Username || !slices.Equal(id.RealmRoles, want.RealmRoles) ||
		id.AuthMethod != want.AuthMethod || id.APIKeyID != want.APIKeyID || id.Guest || !id.ExpiresAt.IsZero() {
		t.Fatalf("identity = %+v", *id)
	}
	steps := []struct {
		name      string
		advance   time.Duration
		key       Key
		reason    Reason
		wantCalls int64
	}{
		{"valid key: hit", 0, good, "", 1},
		{"valid key: hit before the positive TTL", 59 * time.Second, good, "", 1},
		{"valid key: miss after the positive TTL", 2 * time.Second, good, "", 2},
		{"unknown key: miss", 0, unknown, ReasonUnknown, 3},
		{"unknown key: negative hit", 9 * time.Second, unknown, ReasonUnknown, 3},
		{"unknown key: miss after the negative TTL", 2 * time.Second, unknown, ReasonUnknown, 4},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		id, err := v.Validate(ctx, clientA, s.key)
		if ReasonOf(err) != s.reason || (s.reason == "" && (err != nil || id.Subject != "alice")) {
			t.Fatalf("%s: id=%v err=%v", s.name, id, err)
		}
		if got := f.calls.Load(); got != s.wantCalls {
			t.Fatalf("%s: %d validator calls, want %d", s.name, got, s.wantCalls)
		}
	}
	if st := v.Stats(); st.NegativeHits != 1 || st.ValidatorCalls != 4 || st.Entries != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEveryRefusalOfTheValidatorIsARejectionWithItsReason(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), nil)
	for _, r := range []Reason{ReasonUnknown, ReasonRevoked, ReasonExpired, ReasonOwnerDisabled} {
		k := mustGenerate(t, EnvTest)
		if r != ReasonUnknown {
			f.add(k, fakeKey{reason: r})
		}
		_, err := v.Validate(context.Background(), clientA, k)
		if !errors.Is(err, r) {
			t.Fatalf("%s: err = %v", r, err)
		}
		if st, code := HTTPStatus(err); st != http.StatusUnauthorized || code != string(r) {
			t.Fatalf("%s: HTTPStatus = %d %s", r, st, code)
		}
	}
}

func TestForgedKeyWithAVictimsKeyIDNeverHitsTheVictimsEntry(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), nil)
	ctx := context.Background()
	victim := mustGenerate(t, EnvLive)
	f.add(victim, fakeKey{subject: "victim", roles: []string{"admin"}})
	if _, err := v.Validate(ctx, clientA, victim); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		forged := forge(t, victim)
		if forged.KID() != victim.KID() || forged.Equal(victim) {
			t.Fatal("forge is broken")
		}
		id, err := v.Validate(ctx, clientA, forged)
		if id != nil || !errors.Is(err, ReasonUnknown) {
			t.Fatalf("forged key with the victim's id: id=%v err=%v", id, err)
		}
		if got := f.calls.Load(); got != int64(2+i) {
			t.Fatalf("forged key did not reach the validator (%d calls)", got)
		}
	}
	if id, err := v.Validate(ctx, clientA, victim); err != nil || id.Subject != "victim" {
		t.Fatal("victim's key no longer works")
	}
}

func TestPositiveTTLNeverOutlivesTheKeysExpiry(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, nil)
	k := mustGenerate(t, EnvLive)
	exp := clock.Now().Add(30 * time.Second)
	f.add(k, fakeKey{subject: "s", exp: &exp})
	id, err := v.Validate(context.Background(), clientA, k)
	if err != nil || !id.ExpiresAt.Equal(exp) {
		t.Fatalf("id=%v err=%v", id, err)
	}
	clock.Advance(29 * time.Second)
	if _, err := v.Validate(context.Background(), clientA, k); err != nil || f.calls.Load() != 1 {
		t.Fatal("not cached before expiry")
	}
	clock.Advance(time.Second)
	f.add(k, fakeKey{reason: ReasonExpired})
	if _, err := v.Validate(context.Background(), clientA, k); !errors.Is(err, ReasonExpired) || f.calls.Load() != 2 {
		t.Fatalf("expired key served from cache: %v", err)
	}
	// An answer whose expiry has already passed (clock skew) is a rejection.
	past := clock.Now().Add(-time.Second)
	k2 := mustGenerate(t, EnvLive)
	f.add(k2, fakeKey{subject: "s", exp: &past})
	if _, err := v.Validate(context.Background(), clientA, k2); !errors.Is(err, ReasonExpired) {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrentLookupsOfOneKeyMakeOneCall(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, nil)
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	release := f.hold()
	const n = 50
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Validate(context.Background(), fmt.Sprintf("198.51.100.%d", i), k); err == nil {
				ok.Add(1)
			}
		}()
	}
	if !eventually(5*time.Second, func() bool { return f.inFlight.Load() == 1 }) {
		t.Fatal("no call reached the validator")
	}
	time.Sleep(50 * time.Millisecond) // let the others join the flight
	release()
	wg.Wait()
	if ok.Load() != n || f.calls.Load() != 1 {
		t.Fatalf("%d of %d succeeded with %d calls, want all with 1", ok.Load(), n, f.calls.Load())
	}
}

// Requests from ONE client joining the lookup of one key in flight cause no
// lookup of their own, so they must not count against the client's failure
// budget: a busy client (a backend, a NAT) sending one valid key on more
// connections than the burst used to get 429 too_many_auth_failures each
// time the key's entry expired — found by `make load`.
func TestConcurrentRequestsOfOneKeyFromOneClientAreNotRefused(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, nil)
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	release := f.hold()
	n := 3 * DefaultFailureLimit.Rate
	var wg sync.WaitGroup
	var ok atomic.Int64
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Validate(context.Background(), clientA, k); err != nil {
				errs <- err
				return
			}
			ok.Add(1)
		}()
	}
	if !eventually(5*time.Second, func() bool { return f.inFlight.Load() == 1 }) {
		t.Fatal("no call reached the validator")
	}
	time.Sleep(50 * time.Millisecond) // let the others join the flight
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("refused: %v", err)
	}
	if ok.Load() != int64(n) || f.calls.Load() != 1 {
		t.Fatalf("%d of %d succeeded with %d calls, want all with 1", ok.Load(), n, f.calls.Load())
	}
}

func TestAWaiterGivingUpDoesNotFailTheFlight(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, nil)
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	release := f.hold()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := v.Validate(ctx, clientA, k); errc <- err }()
	if !eventually(5*time.Second, func() bool { return f.inFlight.Load() == 1 }) {
		t.Fatal("no call")
	}
	done := make(chan error, 1)
	go func() { _, err := v.Validate(context.Background(), "198.51.100.1", k); done <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: %v", err)
	}
	if st, code := HTTPStatus(context.Canceled); st != 503 || code != "key_validation_unavailable" {
		t.Fatal(st, code)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("other waiter failed: %v", err)
	}
	if f.calls.Load() != 1 {
		t.Fatalf("%d calls", f.calls.Load())
	}
}

func TestInFlightCapBoundsValidatorCallsFromManyClients(t *testing.T) {
	f := newFakeLLM(t)
	const capN = 4
	v := newTestValidator(t, f, nil, func(c *Config) { c.MaxInFlight = capN })
	release := f.hold()
	const n = 200
	var wg sync.WaitGroup
	var busy atomic.Int64
	for i := range n {
		k := mustGenerate(t, EnvLive)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Validate(context.Background(), fmt.Sprintf("10.%d.%d.1", i/250, i%250), k)
			if errors.Is(err, ErrBusy) {
				busy.Add(1)
				if st, code := HTTPStatus(err); st != http.StatusServiceUnavailable || code != "key_validation_busy" {
					t.Errorf("HTTPStatus(ErrBusy) = %d %s", st, code)
				}
			}
		}()
	}
	// Wait for both: under load the admitted calls may reach the fake server
	// after the others were already refused.
	if !eventually(5*time.Second, func() bool { return busy.Load() == n-capN && f.inFlight.Load() == capN }) {
		t.Fatalf("busy = %d (want %d), in flight %d (want %d)", busy.Load(), n-capN, f.inFlight.Load(), capN)
	}
	release()
	wg.Wait()
	if f.maxInFlight.Load() > capN || f.calls.Load() != capN {
		t.Fatalf("max in flight %d, calls %d; cap %d", f.maxInFlight.Load(), f.calls.Load(), capN)
	}
	if v.Stats().InFlight != 0 {
		t.Fatal("in-flight counter leaked")
	}
}

func TestRandomKeysFromOneClientCauseAtMostTheFailureLimitOfCalls(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%t", concurrent), func(t *testing.T) {
			f := newFakeLLM(t)
			clock := newFakeClock()
			v := newTestValidator(t, f, clock, func(c *Config) { c.MaxInFlight = 1000 })
			valid := mustGenerate(t, EnvLive)
			f.add(valid, fakeKey{subject: "s"})
			if _, err := v.Validate(context.Background(), clientA, valid); err != nil {
				t.Fatal(err)
			}
			f.calls.Store(0)
			const n = 10_000
			keys := make([]Key, n)
			for i := range keys {
				keys[i] = mustGenerate(t, EnvLive)
			}
			var tooMany, unknown atomic.Int64
			try := func(k Key) {
				_, err := v.Validate(context.Background(), clientA, k)
				switch {
				case errors.Is(err, ErrTooManyFailures):
					tooMany.Add(1)
					var e *TooManyFailuresError
					if !errors.As(err, &e) || e.RetryAfter <= 0 {
						t.Errorf("no retry-after: %v", err)
					}
				case errors.Is(err, ReasonUnknown):
					unknown.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			}
			if concurrent {
				var wg sync.WaitGroup
				work := make(chan Key)
				for range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range work {
							try(k)
						}
					}()
				}
				for _, k := range keys {
					work <- k
				}
				close(work)
				wg.Wait()
			} else {
				for _, k := range keys {
					try(k)
				}
			}
			limit := int64(DefaultFailureLimit.Rate)
			if f.calls.Load() != limit || unknown.Load() != limit || tooMany.Load() != n-limit {
				t.Fatalf("%d calls, %d rejected, %d refused; want %d calls", f.calls.Load(), unknown.Load(), tooMany.Load(), limit)
			}
			st, code := HTTPStatus(&TooManyFailuresError{RetryAfter: time.Second})
			if st != http.StatusTooManyRequests || code != "too_many_auth_failures" {
				t.Fatal(st, code)
			}
			// A valid key already cached still works for the limited
			// client (a hit costs no lookup); another client is unaffected.
			if _, err := v.Validate(context.Background(), clientA, valid); err != nil {
				t.Fatalf("cached valid key refused: %v", err)
			}
			other := mustGenerate(t, EnvLive)
			if _, err := v.Validate(context.Background(), "198.51.100.9", other); !errors.Is(err, ReasonUnknown) {
				t.Fatalf("other client: %v", err)
			}
			// One failure cell comes back every Period/Rate (3s).
			clock.Advance(3 * time.Second)
			before := f.calls.Load()
			_, err1 := v.Validate(context.Background(), clientA, mustGenerate(t, EnvLive))
			_, err2 := v.Validate(context.Background(), clientA, mustGenerate(t, EnvLive))
			if !errors.Is(err1, ReasonUnknown) || !errors.Is(err2, ErrTooManyFailures) || f.calls.Load() != before+1 {
				t.Fatalf("after 3s: %v, %v, %d calls", err1, err2, f.calls.Load()-before)
			}
		})
	}
}

func TestFailureLimitDoesNotChargeSuccessesOrOutages(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), func(c *Config) {
		c.FailureLimit = ratelimit.Limit{Rate: 2, Period: time.Minute}
		c.PositiveTTL = -1 // every lookup goes to the validator
	})
	good := mustGenerate(t, EnvLive)
	f.add(good, fakeKey{subject: "s"})
	for range 10 {
		if _, err := v.Validate(context.Background(), clientA, good); err != nil {
			t.Fatalf("valid key refused: %v", err)
		}
	}
	f.setStatus(http.StatusServiceUnavailable)
	for range 10 {
		if _, err := v.Validate(context.Background(), clientA, mustGenerate(t, EnvLive)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("outage: %v", err)
		}
	}
	f.setStatus(0)
	for i := range 3 {
		_, err := v.Validate(context.Background(), clientA, mustGenerate(t, EnvLive))
		if want := i < 2; errors.Is(err, ReasonUnknown) != want {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Over the limit, a valid key that is not cached is refused too: the
	// check comes before any lookup.
	if _, err := v.Validate(context.Background(), clientA, good); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("uncached valid key while limited: %v", err)
	}
}

func TestIPv6ClientsAreCountedPerSlash64(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), func(c *Config) { c.FailureLimit = ratelimit.Limit{Rate: 3, Period: time.Minute} })
	for i := range 5 {
		_, err := v.Validate(context.Background(), fmt.Sprintf("2001:db8:1:2::%x", i+1), mustGenerate(t, ""))
		if want := i < 3; errors.Is(err, ReasonUnknown) != want {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := v.Validate(context.Background(), "2001:db8:1:3::1", mustGenerate(t, "")); !errors.Is(err, ReasonUnknown) {
		t.Fatalf("neighbouring /64: %v", err)
	}
}

func TestStaleIfError(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, nil)
	ctx := context.Background()
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatal(err)
	}
	f.setStatus(http.StatusServiceUnavailable)
	clock.Advance(DefaultPositiveTTL + time.Second)
	id, err := v.Validate(ctx, clientA, k)
	if err != nil || id.Subject != "s" {
		t.Fatalf("cached key not served stale: %v", err)
	}
	if v.Stats().StaleServed != 1 || f.calls.Load() != 2 {
		t.Fatalf("stats %+v calls %d", v.Stats(), f.calls.Load())
	}
	// An uncached key gets 503.
	_, err = v.Validate(ctx, clientA, mustGenerate(t, EnvLive))
	if st, code := HTTPStatus(err); !errors.Is(err, ErrUnavailable) || st != 503 || code != "key_validation_unavailable" {
		t.Fatalf("uncached key during outage: %v", err)
	}
	// The validator unreachable altogether: still stale.
	f.srv.Close()
	if _, err := v.Validate(ctx, clientA, k); err != nil {
		t.Fatalf("validator down: %v", err)
	}
	// Not past MaxStale.
	clock.Advance(DefaultMaxStale)
	if _, err := v.Validate(ctx, clientA, k); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("served beyond max stale: %v", err)
	}
}

func TestStaleNeverOutlivesExpiryOrRevocation(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, nil)
	ctx := context.Background()
	exp := clock.Now().Add(90 * time.Second)
	k1, k2 := mustGenerate(t, EnvLive), mustGenerate(t, EnvLive)
	f.add(k1, fakeKey{subject: "s", exp: &exp})
	f.add(k2, fakeKey{subject: "s"})
	for _, k := range []Key{k1, k2} {
		if _, err := v.Validate(ctx, clientA, k); err != nil {
			t.Fatal(err)
		}
	}
	v.revoke(`{"key_id":"` + k2.KID() + `","at":"2030-01-02T03:04:05Z"}`)
	f.setStatus(http.StatusBadGateway)
	clock.Advance(91 * time.Second)
	if _, err := v.Validate(ctx, clientA, k1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("expired key served stale: %v", err)
	}
	if _, err := v.Validate(ctx, clientA, k2); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("revoked key served stale: %v", err)
	}
}

func TestRevocationDropsOnlyThatKeysEntries(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), nil)
	ctx := context.Background()
	a, b := mustGenerate(t, EnvLive), mustGenerate(t, EnvLive)
	f.add(a, fakeKey{subject: "a"})
	f.add(b, fakeKey{subject: "b"})
	for _, k := range []Key{a, b} {
		if _, err := v.Validate(ctx, clientA, k); err != nil {
			t.Fatal(err)
		}
	}
	f.add(a, fakeKey{reason: ReasonRevoked})
	for _, bad := range []string{"", "{", `{"key_id":"short"}`, `{"key_id":"../../x!"}`} {
		v.revoke(bad) // ignored
	}
	v.revoke(`{"key_id":"` + a.KID() + `","at":"2030-01-02T03:04:05Z"}`)
	if _, err := v.Validate(ctx, clientA, a); !errors.Is(err, ReasonRevoked) {
		t.Fatalf("revoked key: %v", err)
	}
	if _, err := v.Validate(ctx, clientA, b); err != nil || f.calls.Load() != 3 {
		t.Fatalf("other key lost its entry: %v, %d calls", err, f.calls.Load())
	}
	if v.Stats().Revocations != 1 {
		t.Fatal(v.Stats())
	}
}

func TestAnswerFetchedAcrossARevocationIsNotCached(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, nil)
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	release := f.hold()
	done := make(chan error, 1)
	go func() { _, err := v.Validate(context.Background(), clientA, k); done <- err }()
	if !eventually(5*time.Second, func() bool { return f.inFlight.Load() == 1 }) {
		t.Fatal("no call")
	}
	v.revoke(`{"key_id":"` + k.KID() + `","at":"2030-01-02T03:04:05Z"}`)
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	release()
	if err := <-done; err != nil {
		t.Fatal(err) // the request raced the revocation: either answer is fine
	}
	f.add(k, fakeKey{reason: ReasonRevoked})
	if _, err := v.Validate(context.Background(), clientA, k); !errors.Is(err, ReasonRevoked) {
		t.Fatalf("answer from before the revocation was cached: %v", err)
	}
}

func TestValidatorAnswersThatBreakTheContractAreFailures(t *testing.T) {
	k := mustGenerate(t, EnvLive)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	good := `"subject":"s","roles":["user"],"key_id":"` + k.KID() + `"`
	tests := []struct {
		name   string
		status int
		body   string
		reason Reason
		fail   bool
	}{
		{"valid", 200, `{` + good + `}`, "", false},
		{"valid with expiry", 200, `{` + good + `,"expires_at":"2030-02-01T00:00:00Z","guest":true}`, "", false},
		{"valid with unknown fields", 200, `{` + good + `,"email":"a@b","future":1}`, "", false},
		{"expired per its own expires_at", 200, `{` + good + `,"expires_at":"2029-12-31T00:00:00Z"}`, ReasonExpired, false},
		{"another key's id", 200, `{"subject":"s","key_id":"XXXXXXXX"}`, "", true},
		{"no subject", 200, `{"key_id":"` + k.KID() + `"}`, "", true},
		{"control character in subject", 200, `{"subject":"a\nX-User-ID: admin","key_id":"` + k.KID() + `"}`, "", true},
		{"role with a control character", 200, `{` + good + `,"roles":["a\u0000"]}`, "", true},
		{"too many roles", 200, `{` + good + `,"roles":[` + strings.Repeat(`"r",`, 64) + `"r"]}`, "", true},
		{"subject too long", 200, `{"subject":"` + strings.Repeat("a", 257) + `","key_id":"` + k.KID() + `"}`, "", true},
		{"bad expiry", 200, `{` + good + `,"expires_at":"tomorrow"}`, "", true},
		{"not JSON", 200, `<html>`, "", true},
		{"roles not a list", 200, `{` + good + `,"roles":"admin"}`, "", true},
		{"400", 400, `{"error":{"code":"invalid_request"}}`, ReasonMalformed, false},
		{"401 unknown", 401, `{"error":{"code":"key_unknown"}}`, ReasonUnknown, false},
		{"401 revoked", 401, `{"error":{"code":"key_revoked"}}`, ReasonRevoked, false},
		{"401 expired", 401, `{"error":{"code":"key_expired"}}`, ReasonExpired, false},
		{"401 owner disabled", 401, `{"error":{"code":"owner_disabled"}}`, ReasonOwnerDisabled, false},
		{"401 internal auth", 401, `{"error":{"code":"internal_auth_failed"}}`, "", true},
		{"401 unknown code", 401, `{"error":{"code":"key_checksum"}}`, "", true},
		{"401 not JSON", 401, `nope`, "", true},
		{"403", 403, `{}`, "", true},
		{"429", 429, `{}`, "", true},
		{"503", 503, `{"error":{"code":"unavailable"}}`, "", true},
		{"302", 302, ``, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, reason, err := decodeAnswer(tt.status, []byte(tt.body), k.KID(), now)
			if (err != nil) != tt.fail || reason != tt.reason {
				t.Fatalf("id=%v reason=%q err=%v", id, reason, err)
			}
			if id != nil && (id.AuthMethod != identity.MethodAPIKey || id.APIKeyID != k.KID() || id.Subject != "s") {
				t.Fatalf("identity %+v", *id)
			}
		})
	}
}

func TestInternalTokenIsNeverInErrorsOrFollowedThroughRedirects(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Internal-Token") != "" {
			leaked.Store(true)
		}
	}))
	t.Cleanup(elsewhere.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+ValidatePath, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"redirect", Config{URL: redirector.URL + ValidatePath}},
		{"redirect with a caller's client", Config{URL: redirector.URL + ValidatePath, HTTPClient: &http.Client{}}},
		{"unreachable", Config{URL: "http://127.0.0.1:1" + ValidatePath}},
		{"timeout", Config{URL: "http://10.255.255.1:9" + ValidatePath, Timeout: 50 * time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.InternalToken = testToken
			v, err := NewValidator(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			_, err = v.Validate(context.Background(), clientA, mustGenerate(t, EnvLive))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v", err)
			}
			if strings.Contains(err.Error(), string(testToken)) {
				t.Fatalf("error carries the token: %v", err)
			}
		})
	}
	if leaked.Load() {
		t.Fatal("internal token followed a redirect")
	}
}

func TestWrongInternalTokenIsAFailureNotARejection(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), func(c *Config) { c.InternalToken = []byte("wrong-token") })
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	for range 30 { // never charged to the client
		if _, err := v.Validate(context.Background(), clientA, k); !errors.Is(err, ErrUnavailable) || ReasonOf(err) != "" {
			t.Fatalf("err = %v", err)
		}
	}
}

func TestRequestIDIsForwardedWhenWellFormed(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, newFakeClock(), nil)
	for _, id := range []string{"req-1.a_B", "bad id\r\nX: y", strings.Repeat("a", 129)} {
		_, _ = v.Validate(WithRequestID(context.Background(), id), clientA, mustGenerate(t, ""))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.seen, []string{"req-1.a_B", "", ""}) {
		t.Fatalf("X-Request-ID seen: %q", f.seen)
	}
}

func TestConfigValidation(t *testing.T) {
	base := Config{URL: "http://llm-api:8081" + ValidatePath, InternalToken: testToken}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"https", func(c *Config) { c.URL = "https://llm-api" + ValidatePath }, ""},
		{"no url", func(c *Config) { c.URL = "" }, "url is required"},
		{"ftp url", func(c *Config) { c.URL = "ftp://x/y" }, "scheme"},
		{"no host", func(c *Config) { c.URL = "http:///x" }, "no host"},
		{"user info", func(c *Config) { c.URL = "http://u:p@llm-api/x" }, "user info"},
		{"query", func(c *Config) { c.URL = "http://llm-api/x?token=1" }, "query"},
		{"no token", func(c *Config) { c.InternalToken = nil }, "internal token is required"},
		{"token with newline", func(c *Config) { c.InternalToken = []byte("abc\n") }, "control character"},
		{"token with trailing space", func(c *Config) { c.InternalToken = []byte("abc ") }, "whitespace"},
		{"huge ttl", func(c *Config) { c.PositiveTTL = 48 * time.Hour }, "positive ttl"},
		{"negative ttls disable", func(c *Config) { c.PositiveTTL, c.NegativeTTL, c.MaxStale = -1, -1, -1 }, ""},
		{"tiny timeout", func(c *Config) { c.Timeout = time.Microsecond }, "timeout"},
		{"negative entries", func(c *Config) { c.MaxEntries = -1 }, "max entries"},
		{"negative in flight", func(c *Config) { c.MaxInFlight = -1 }, "max in flight"},
		{"bad failure limit", func(c *Config) { c.FailureLimit = ratelimit.Limit{Rate: -1, Period: time.Minute} }, "failure limit"},
		{"brace in prefix", func(c *Config) { c.RedisKeyPrefix = "a{b}" }, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := NewValidator(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatal("NewValidator accepted it")
			}
		})
	}
}

func TestConfigNeverPrintsTheInternalToken(t *testing.T) {
	cfg := Config{URL: "http://llm-api" + ValidatePath, InternalToken: testToken}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s %x %d", cfg, cfg, cfg, cfg, cfg, cfg), fmt.Sprint(&cfg), must(cfg.MarshalJSON())} {
		if strings.Contains(s, string(testToken)) || strings.Contains(s, fmt.Sprint(testToken)) || strings.Contains(s, fmt.Sprintf("%x", testToken)) {
			t.Fatalf("config printed its token: %s", s)
		}
	}
}

func must(b []byte, err error) string {
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestSharedReturnsOneValidatorPerConfiguration(t *testing.T) {
	cfg := Config{URL: "http://llm-api:1" + ValidatePath, InternalToken: []byte("shared-test-token")}
	a, err := Shared(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Shared(cfg)
	cfg2 := cfg
	cfg2.InternalToken = []byte("another-token")
	c, _ := Shared(cfg2)
	cfg3 := cfg
	cfg3.NegativeTTL = 5 * time.Second
	d, _ := Shared(cfg3)
	if a != b || a == c || a == d || c == d {
		t.Fatal("Shared does not key by configuration")
	}
	if _, err := Shared(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal(err)
	}
}

func TestCloseStopsLookupsButNotCachedHits(t *testing.T) {
	f := newFakeLLM(t)
	v := newTestValidator(t, f, nil, nil)
	k := mustGenerate(t, EnvLive)
	f.add(k, fakeKey{subject: "s"})
	if _, err := v.Validate(context.Background(), clientA, k); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	_ = v.Close()
	if _, err := v.Validate(context.Background(), clientA, k); err != nil {
		t.Fatalf("cached hit after close: %v", err)
	}
	if _, err := v.Validate(context.Background(), clientA, mustGenerate(t, "")); !errors.Is(err, ErrClosed) {
		t.Fatalf("miss after close: %v", err)
	}
	if _, err := v.Validate(context.Background(), clientA, Key{}); !errors.Is(err, ReasonMalformed) {
		t.Fatal("zero key")
	}
}

func TestCacheStaysBounded(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, func(c *Config) {
		c.MaxEntries = 64
		c.FailureLimit = ratelimit.Limit{Rate: 1_000_000, Period: time.Second}
	})
	good := mustGenerate(t, EnvLive)
	f.add(good, fakeKey{subject: "s"})
	if _, err := v.Validate(context.Background(), clientA, good); err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		_, _ = v.Validate(context.Background(), clientA, mustGenerate(t, ""))
	}
	if n := v.Stats().Entries; n > 64+cacheShards {
		t.Fatalf("%d entries, bound 64", n)
	}
}

func TestFailureCounterStaysBounded(t *testing.T) {
	fl := newFailureLimiter(20, time.Minute, 20, 256)
	now := time.Now().UnixNano()
	for i := range 10_000 {
		ip := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		if _, ok := fl.reserve(ip, now); !ok {
			t.Fatal("fresh client refused")
		}
		fl.release(ip, now, true)
	}
	if n := fl.len(); n > 256+failShards {
		t.Fatalf("%d tracked clients, bound 256", n)
	}
}

func TestFailureLimiterReservesLookupsInFlight(t *testing.T) {
	fl := newFailureLimiter(3, time.Minute, 3, 100)
	now := int64(1e18)
	for i := range 3 {
		if _, ok := fl.reserve("c", now); !ok {
			t.Fatalf("reservation %d refused", i)
		}
	}
	retry, ok := fl.reserve("c", now)
	if ok || retry != 20*time.Second {
		t.Fatalf("4th concurrent lookup: ok=%t retry=%s", ok, retry)
	}
	fl.release("c", now, false) // a success frees its reservation
	if _, ok := fl.reserve("c", now); !ok {
		t.Fatal("freed reservation not reusable")
	}
	fl.block("c", now+int64(time.Hour))
	fl.release("c", now, false)
	if retry, ok := fl.reserve("c", now); ok || retry != time.Hour {
		t.Fatalf("blocked client: ok=%t retry=%s", ok, retry)
	}
}

func TestCachedAnswersOnlyFreshValidEntriesWithoutAllocating(t *testing.T) {
	f := newFakeLLM(t)
	clock := newFakeClock()
	v := newTestValidator(t, f, clock, nil)
	good, bad := mustGenerate(t, EnvLive), mustGenerate(t, EnvLive)
	f.add(good, fakeKey{subject: "s"})
	if _, ok := v.Cached(good); ok {
		t.Fatal("hit before any lookup")
	}
	_, _ = v.Validate(context.Background(), clientA, good)
	_, _ = v.Validate(context.Background(), clientA, bad)
	if id, ok := v.Cached(good); !ok || id.Subject != "s" {
		t.Fatal("valid key not cached")
	}
	if _, ok := v.Cached(bad); ok {
		t.Fatal("a rejection is a Cached hit")
	}
	if _, ok := v.Cached(forge(t, good)); ok {
		t.Fatal("forged key id hit")
	}
	if _, ok := v.Cached(Key{}); ok {
		t.Fatal("zero key hit")
	}
	if n := testing.AllocsPerRun(100, func() { v.Cached(good) }); n != 0 {
		t.Fatalf("Cached allocates %v times", n)
	}
	clock.Advance(DefaultPositiveTTL)
	if _, ok := v.Cached(good); ok {
		t.Fatal("stale entry is a Cached hit")
	}
}

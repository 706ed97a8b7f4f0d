package apikey

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testToken is the internal token of the fake llm-api.
var testToken = []byte("itok-7d1c0a4f9b2e8c3d5a6f7e8d9c0b1a2f")

func init() { testenv.RecordSecret(string(testToken)) } // the run's secret sweep

// fakeClock is an injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeKey is a key as the fake llm-api knows it.
type fakeKey struct {
	subject string
	roles   []string
	exp     *time.Time
	reason  Reason // non-empty: refused with this code
}

// fakeLLM is an httptest fake of llm-api's internal validate endpoint
// (docs/contracts.md).
type fakeLLM struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	keys   map[string]fakeKey // by whole key
	status int                // non-zero: answer this status with an "unavailable" body
	gate   chan struct{}      // non-nil: each call waits until it is closed
	seen   []string           // X-Request-ID of each call

	calls, inFlight, maxInFlight atomic.Int64
}

func newFakeLLM(t testing.TB) *fakeLLM {
	f := &fakeLLM{t: t, keys: map[string]fakeKey{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLLM) url() string { return f.srv.URL + ValidatePath }

func (f *fakeLLM) add(k Key, fk fakeKey) {
	f.mu.Lock()
	f.keys[k.Secret()] = fk
	f.mu.Unlock()
}

func (f *fakeLLM) setStatus(s int) {
	f.mu.Lock()
	f.status = s
	f.mu.Unlock()
}

// hold makes every call wait until release. release is idempotent and also
// runs at cleanup (before the server closes: cleanups run last-in first-out),
// so a test that fails while calls wait cannot hang in httptest's Close.
func (f *fakeLLM) hold() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gate := make(chan struct{})
	f.gate = gate
	release = sync.OnceFunc(func() { close(gate) })
	f.t.Cleanup(release)
	return release
}

func writeErr(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func (f *fakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	f.calls.Add(1)
	f.mu.Lock()
	gate, status := f.gate, f.status
	f.seen = append(f.seen, r.Header.Get("X-Request-ID"))
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if r.Method != http.MethodPost || r.URL.Path != ValidatePath {
		writeErr(w, http.StatusNotFound, "not_found")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Internal-Token")), testToken) != 1 {
		writeErr(w, http.StatusUnauthorized, "internal_auth_failed")
		return
	}
	if status != 0 {
		writeErr(w, status, "unavailable")
		return
	}
	var body struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request")
		return
	}
	k, err := Parse(body.Key)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f.mu.Lock()
	fk, ok := f.keys[body.Key]
	f.mu.Unlock()
	switch {
	case !ok:
		writeErr(w, http.StatusUnauthorized, string(ReasonUnknown))
	case fk.reason != "":
		writeErr(w, http.StatusUnauthorized, string(fk.reason))
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"subject": fk.subject, "username": "user-" + fk.subject, "roles": fk.roles,
			"key_id": k.KID(), "expires_at": fk.exp, "guest": false,
		})
	}
}

func mustGenerate(t testing.TB, env string) Key {
	t.Helper()
	k, err := Generate(env)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestValidator builds a Validator against f on an injected clock.
func newTestValidator(t testing.TB, f *fakeLLM, clock *fakeClock, mutate func(*Config)) *Validator {
	t.Helper()
	cfg := Config{URL: f.url(), InternalToken: testToken}
	if clock != nil {
		cfg.Now = clock.Now
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// forge returns a well-formed key (valid checksum) carrying victim's key
// id: what anyone can compute from a public key id.
func forge(t testing.TB, victim Key) Key {
	t.Helper()
	other := mustGenerate(t, victim.Env())
	body := victim.Secret()[:int(victim.off)+KIDLen] + other.Secret()[int(other.off)+KIDLen:int(other.n)-ChecksumLen]
	var sum [ChecksumLen]byte
	encodeChecksum(&sum, crcString(body))
	k, err := Parse(body + string(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startRedisServer runs a private redis-server the test may kill.
func startRedisServer(t testing.TB, args ...string) *testenv.RedisServer {
	t.Helper()
	return testenv.StartRedis(t, args...)
}

func redisAddr(t testing.TB) string { t.Helper(); return testenv.RedisAddr(t) }

// redisClient is a client for addr, closed at the end of the test.
func redisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return c
}

// uniquePrefix keeps tests (and repeated runs) on one Redis apart.
func uniquePrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "test:" + hex.EncodeToString(b) + ":apikey:"
}

// waitSubscribed waits for v's revocation subscription.
func waitSubscribed(t testing.TB, v *Validator) {
	t.Helper()
	select {
	case <-v.subReady:
	case <-time.After(5 * time.Second):
		t.Fatal("revocation subscriber did not subscribe within 5s")
	}
}

// eventually polls cond every 5ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

package apikey

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testToken is the internal token of the fake llm-api.
var testToken = []byte("itok-7d1c0a4f9b2e8c3d5a6f7e8d9c0b1a2f")

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

func (f *fakeLLM) hold() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = make(chan struct{})
	return f.gate
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

// redisAddr returns the integration Redis that `make test` starts. Unset,
// the test is skipped locally but fails under CI=true, where it must run.
func redisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("EDGEGUARD_TEST_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEGUARD_TEST_REDIS_ADDR is unset under CI=true (scripts/test.sh starts Redis and sets it)")
		}
		t.Skip("EDGEGUARD_TEST_REDIS_ADDR unset: integration test skipped (make test sets it)")
	}
	return addr
}

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

// redisServer is a redis-server child process a test can kill and restart.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

// startRedisServer runs its own redis-server on a free loopback port (for
// tests that kill it). It needs the integration environment.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	redisAddr(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not in PATH under CI=true")
		}
		t.Skip("redis-server not in PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{t: t, port: ln.Addr().(*net.TCPAddr).Port}
	_ = ln.Close()
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func(c *exec.Cmd) { _ = c.Wait() }(s.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not start", s.addr())
}

func (s *redisServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	for range 100 {
		c, err := net.DialTimeout("tcp", s.addr(), 50*time.Millisecond)
		if err != nil {
			break
		}
		_ = c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
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

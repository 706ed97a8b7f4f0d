// Package testenv gives integration tests the real components that
// `make test` (scripts/test.sh) starts, and private ones they may kill.
//
// The rule it enforces: a test that needs a component skips locally when the
// component is absent, and FAILS when CI=true — CI must never pass by
// skipping what it was meant to run. It is for tests only.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Variables set by scripts/test.sh.
const (
	VarRedisAddr   = "EDGEGUARD_TEST_REDIS_ADDR"
	VarPostgresDSN = "EDGEGUARD_TEST_PG_DSN"
	VarBin         = "EDGEGUARD_BIN"
)

// CI reports whether the tests run under CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// Require returns the environment variable name; unset, the test is skipped
// locally and fails under CI.
func Require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if CI() {
			t.Fatalf("%s is unset under CI=true (scripts/test.sh must start the component and set it)", name)
		}
		t.Skipf("%s unset: integration test skipped (make test sets it)", name)
	}
	return v
}

// RedisAddr is the shared throw-away Redis of the test run.
func RedisAddr(t testing.TB) string { t.Helper(); return Require(t, VarRedisAddr) }

// PostgresDSN is the throw-away PostgreSQL database of the test run.
func PostgresDSN(t testing.TB) string { t.Helper(); return Require(t, VarPostgresDSN) }

// Binary returns the path of a built binary (make build → bin/<name>).
func Binary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Require(t, VarBin), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run make build)", p, err)
	}
	return p
}

// FreeAddr returns a loopback address nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RedisServer is a private redis-server child process that a test can kill,
// restart or freeze (outage tests). It stops with the test.
type RedisServer struct {
	t    testing.TB
	port int
	args []string
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server on a free loopback port with the
// extra args (e.g. "--requirepass", pw). It needs the integration environment
// (RedisAddr) and the redis-server binary.
func StartRedis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	RedisAddr(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		if CI() {
			t.Fatal("redis-server not in PATH under CI=true")
		}
		t.Skip("redis-server not in PATH")
	}
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	s := &RedisServer{t: t, args: args}
	s.port, _ = strconv.Atoi(port)
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start (re)starts the server on its port and waits until it accepts
// connections.
func (s *RedisServer) Start() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"}, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func(c *exec.Cmd) { _ = c.Wait() }(s.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not start", s.Addr())
}

// Kill kills the server and waits until its port is free again.
func (s *RedisServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	for range 100 {
		c, err := net.DialTimeout("tcp", s.Addr(), 50*time.Millisecond)
		if err != nil {
			break
		}
		_ = c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
}

// Signal sends sig to the server (SIGSTOP/SIGCONT freeze and thaw it).
func (s *RedisServer) Signal(sig os.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

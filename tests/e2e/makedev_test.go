package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

// devScript runs scripts/dev.sh with args on the run's components, in dir.
func devScript(ctx context.Context, t *testing.T, dir string, extra []string, args ...string) *exec.Cmd {
	t.Helper()
	env, err := keycloak.FromEnv()
	if err != nil {
		t.Skipf("no Keycloak: %v", err)
	}
	redisAddr, pgDSN := os.Getenv("EDGEGUARD_TEST_REDIS_ADDR"), os.Getenv("EDGEGUARD_TEST_PG_DSN")
	if redisAddr == "" || pgDSN == "" {
		t.Skip("no Redis/PostgreSQL (run through make test)")
	}
	dsn, err := freshSchema(pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "dev.sh"), args...)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(),
		"DEV_DIR="+dir, "DEV_GATEWAY_PORT=0",
		"REDIS_ADDR="+redisAddr, "PG_DSN="+dsn,
		"KEYCLOAK_URL="+env.URL, "KEYCLOAK_ISSUER="+env.Issuer,
		"KEYCLOAK_LLM_API_CLIENT_SECRET_FILE="+os.Getenv(keycloak.EnvLLMAPISecret),
		"KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE="+os.Getenv(keycloak.EnvGuestLoginSecret),
	), extra...)
	return cmd
}

// TestMakeDevCtrlCStopsEverything: `make dev` in the foreground, then
// Ctrl-C (SIGINT): every process it started is gone and the gateway's port
// is free again.
func TestMakeDevCtrlCStopsEverything(t *testing.T) {
	requireEdge(t) // the same components; skips or fails like the other suites
	dir := kongReadableTempDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := devScript(ctx, t, dir, nil, "up")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gw, kongPrefix := "", ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "GATEWAY_URL=http://"); ok {
			gw = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "KONG_PREFIX="); ok {
			kongPrefix = v
		}
		if strings.HasPrefix(sc.Text(), "KONG_METRICS_EDGEGUARD=") {
			break // the last env line: the stack is ready
		}
	}
	if gw == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("make dev printed no GATEWAY_URL:\n%s", stderr.String())
	}
	pids, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid"))
	if len(pids) != 4 {
		t.Errorf("%d pid files, want 4 (stub, three services)", len(pids))
	}
	// Kong: its nginx master and the six plugin servers it started.
	pids = append(pids, filepath.Join(kongPrefix, "pids", "nginx.pid"))
	procs := pluginServers(t, kongPrefix)
	if len(procs) != 6 {
		t.Errorf("%d plugin servers run with -kong-prefix %s, want 6", len(procs), kongPrefix)
	}
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		procs = append(procs, pid)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(&bytes.Buffer{}); done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("make dev after Ctrl-C: %v (want exit 0)", err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		// kill what it started too: a stack left running shares the
		// suites' Redis (its llm-api would consume their audit stream)
		var alive []int
		for _, pid := range procs {
			if syscall.Kill(pid, 0) == nil {
				alive = append(alive, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		t.Fatalf("make dev did not stop within 60 s of Ctrl-C (still running then: %v)", alive)
	}
	for _, pid := range procs {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d still runs after Ctrl-C", pid)
		}
	}
	if c, err := net.DialTimeout("tcp", gw, time.Second); err == nil {
		c.Close()
		t.Errorf("the gateway's port %s still accepts connections", gw)
	}
}

// kongReadableTempDir is a test's temporary folder that Kong's non-root
// user can reach (t.TempDir and its parent are 0700).
func kongReadableTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pluginServers lists the processes started with -kong-prefix prefix.
func pluginServers(t *testing.T, prefix string) []int {
	t.Helper()
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-kong-prefix" && filepath.Clean(args[i+1]) == filepath.Clean(prefix) {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// TestMakeDevRefusesATakenPort: a port in use stops the start with a message
// naming it, before anything starts.
func TestMakeDevRefusesATakenPort(t *testing.T) {
	requireEdge(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := devScript(ctx, t, kongReadableTempDir(t), []string{"DEV_GATEWAY_PORT=" + strconv.Itoa(port)}, "up", "--detach")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("make dev started on a port in use")
	}
	if !strings.Contains(string(out), "port "+strconv.Itoa(port)+" on 127.0.0.1 is in use") || !strings.Contains(string(out), "DEV_GATEWAY_PORT") {
		t.Errorf("the refusal does not name the port and the variable:\n%s", out)
	}
}

// TestMakeDevFailedStartStopsWhatStarted: when a part fails to start (here
// Kong: KONG_BIN names no Kong), make dev exits non-zero with the reason and
// leaves no process it started behind (the services were already up).
func TestMakeDevFailedStartStopsWhatStarted(t *testing.T) {
	requireEdge(t)
	dir := kongReadableTempDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := devScript(ctx, t, dir, []string{"KONG_BIN=/bin/false"}, "up", "--detach")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("make dev succeeded without a Kong")
	}
	if !strings.Contains(string(out), "KONG_BIN") {
		t.Errorf("the failure does not name KONG_BIN:\n%s", out)
	}
	// Every process of the stack gets the stack's folder in its environment
	// (secret files, media storage): none may be left.
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline"))
			t.Errorf("process %s (%s) still runs after the failed start", filepath.Base(filepath.Dir(f)), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
}

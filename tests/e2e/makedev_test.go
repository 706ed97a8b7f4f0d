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
	dir := t.TempDir()
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
	gw := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "GATEWAY_URL=http://"); ok {
			gw = v
		}
		if strings.HasPrefix(sc.Text(), "DEV_SECRETS=") {
			break // the last env line: the stack is ready
		}
	}
	if gw == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("make dev printed no GATEWAY_URL:\n%s", stderr.String())
	}
	pids, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid"))
	if len(pids) != 5 {
		t.Errorf("%d pid files, want 5 (stub, three services, gateway)", len(pids))
	}
	var procs []int
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
		t.Fatal("make dev did not stop within 60 s of Ctrl-C")
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
	cmd := devScript(ctx, t, t.TempDir(), []string{"DEV_GATEWAY_PORT=" + strconv.Itoa(port)}, "up", "--detach")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("make dev started on a port in use")
	}
	if !strings.Contains(string(out), "port "+strconv.Itoa(port)+" on 127.0.0.1 is in use") || !strings.Contains(string(out), "DEV_GATEWAY_PORT") {
		t.Errorf("the refusal does not name the port and the variable:\n%s", out)
	}
}

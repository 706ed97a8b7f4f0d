package e2e

// `edgectl run -- COMMAND` end to end: the real edgectl binary (bin/edgectl,
// logged in with the device flow through the gateway), the official openai
// SDK as the child, the real Kong, llm-api, Keycloak, Redis and PostgreSQL.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// edgectlUser is one person's edgectl: the binary, a private HOME with the
// encrypted credential file of a device login through the gateway.
type edgectlUser struct {
	bin, home, server string
}

var (
	edgectlOnce sync.Once
	edgectlU    *edgectlUser
	edgectlErr  string
)

// env is the environment of every edgectl process of the user.
func (u *edgectlUser) env(extra ...string) []string {
	env := []string{"HOME=" + u.home, "XDG_CONFIG_HOME=" + filepath.Join(u.home, ".config"),
		"EDGEGUARD_KEYRING=file", "EDGEGUARD_SERVER=" + u.server}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "HOME", "XDG_CONFIG_HOME", "EDGEGUARD_KEYRING", "EDGEGUARD_SERVER", "EDGEGUARD_API_KEY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// command is edgectl with args for the user.
func (u *edgectlUser) command(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, u.bin, args...)
	c.Env = u.env()
	c.WaitDelay = 5 * time.Second
	return c
}

// token is a fresh access token of the user's login (edgectl token).
func (u *edgectlUser) token(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := u.command(ctx, "token").Output()
	tok := strings.TrimSpace(string(out))
	if err != nil || tok == "" {
		t.Fatalf("edgectl token: %v", err)
	}
	used.add(tok)
	return tok
}

var userCode = regexp.MustCompile(`user_code=([A-Z]{4}-[A-Z]{4})`)

// loggedInEdgectl returns an edgectl logged in, once per run, as a new
// user: `edgectl login --server <gateway>` runs as a process; the test reads
// the verification URL it prints and approves the device as the user in a
// browser session (the form-driving client of internal/keycloak).
func loggedInEdgectl(t *testing.T) (*suite, *edgeStack, *edgectlUser) {
	t.Helper()
	s, e := requireEdge(t)
	bin := testenv.Binary(t, "edgectl")
	edgectlOnce.Do(func() { edgectlU, edgectlErr = login(t, s, e, bin) })
	if edgectlU == nil {
		t.Fatalf("edgectl login through the gateway failed: %s", edgectlErr)
	}
	return s, e, edgectlU
}

func login(t *testing.T, s *suite, e *edgeStack, bin string) (*edgectlUser, string) {
	home, err := os.MkdirTemp("", "edgeguard-e2e-edgectl-")
	if err != nil {
		return nil, err.Error()
	}
	u := &edgectlUser{bin: bin, home: home, server: e.Env["GATEWAY_PUBLIC_URL"]}
	_, name, pw := s.createUserUntil(t, func(f func()) { e.atStop = append(e.atStop, f) })
	e.atStop = append(e.atStop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = u.command(ctx, "logout").Run() // revokes the session
		_ = os.RemoveAll(home)
	})
	ctx, cancel := context.WithTimeout(s.ctx, 60*time.Second)
	defer cancel()
	c := u.command(ctx, "login", "--server", u.server)
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err.Error()
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		return nil, err.Error()
	}
	var code string
	sc := bufio.NewScanner(stdout)
	for code == "" && sc.Scan() {
		if m := userCode.FindStringSubmatch(sc.Text()); m != nil {
			code = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if code == "" {
		_ = c.Wait()
		return nil, "no verification URL on stdout; stderr: " + stderr.String()
	}
	b := s.kc.NewBrowser("")
	p, err := b.Get(ctx, s.kc.RealmURL()+"/device?user_code="+url.QueryEscape(code))
	if err == nil {
		p, err = b.Login(ctx, p, name, pw)
	}
	if err == nil && p.Status != http.StatusOK {
		err = errors.New("the device login page answered " + http.StatusText(p.Status))
	}
	if err == nil {
		p, err = b.Submit(ctx, p, "/login-actions/consent", url.Values{"accept": {"Yes"}})
	}
	if err == nil && p.Status != http.StatusOK {
		err = errors.New("the consent page answered " + http.StatusText(p.Status))
	}
	if err != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		return nil, "approving the device: " + err.Error()
	}
	if err := c.Wait(); err != nil {
		return nil, "edgectl login: " + err.Error() + "; stderr: " + stderr.String()
	}
	return u, ""
}

// keySink receives what a run's child hands over (its key and pid) on
// loopback TCP, and when it closed the connection — just before it exits.
type keySink struct {
	ln   net.Listener
	got  chan sinkMsg
	addr string
}

type sinkMsg struct {
	Key    string `json:"key"`
	PID    int    `json:"pid"`
	closed time.Time
}

func newKeySink(t *testing.T) *keySink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &keySink{ln: ln, got: make(chan sinkMsg, 1), addr: ln.Addr().String()}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(io.LimitReader(conn, 4096))
		var m sinkMsg
		m.closed = time.Now()
		if json.Unmarshal(b, &m) == nil && m.Key != "" {
			used.add(m.Key)
		}
		k.got <- m
	}()
	return k
}

func (k *keySink) wait(t *testing.T) sinkMsg {
	t.Helper()
	select {
	case m := <-k.got:
		if !strings.HasPrefix(m.Key, "sk_") {
			t.Fatal("the child handed over no sk_ key")
		}
		return m
	case <-time.After(60 * time.Second):
		t.Fatal("the child never handed over its key")
		return sinkMsg{}
	}
}

// withKey sends one request with the run's key from client (an address of
// its own through the trusted loopback peer: refused keys count against the
// client's failure limit, 20 a minute, which must not block other tests).
func withKey(t *testing.T, e *edgeStack, client, method, path, key string, body any) answer {
	t.Helper()
	return e.do(t, method, path, key, body, http.Header{"X-Forwarded-For": {client}})
}

// refusedWithin polls the gateway with key until it is refused with code,
// for at most d; it returns how long that took. Only the first refusal
// counts against client's failure limit.
func refusedWithin(t *testing.T, e *edgeStack, client, key, code string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		a := withKey(t, e, client, http.MethodGet, "/v1/models", key, nil)
		if a.status == http.StatusUnauthorized && a.code() == code {
			return time.Since(start)
		}
		// 429: authenticated, then over the user's rate limit (10/s): still valid
		if a.status != http.StatusOK && a.status != http.StatusTooManyRequests && a.status != http.StatusUnauthorized {
			t.Fatalf("GET /v1/models with the run's key: %d %s", a.status, a.body)
		}
		if time.Since(start) > d {
			t.Fatalf("the run's key still answers %d %s after %s (want 401 %s)", a.status, a.code(), d, code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stayRefused checks that key keeps being refused, on the model routes
// the SDK uses (a few requests: each refusal counts against client's
// failure limit).
func stayRefused(t *testing.T, e *edgeStack, client, key, code string) {
	t.Helper()
	for range 3 {
		if a := withKey(t, e, client, http.MethodGet, "/v1/models", key, nil); a.status != http.StatusUnauthorized || a.code() != code {
			t.Fatalf("the run's key answered %d %s after it was refused", a.status, a.code())
		}
		if a := withKey(t, e, client, http.MethodPost, "/v1/chat/completions", key, map[string]any{"model": "stub-model",
			"messages": []map[string]string{{"role": "user", "content": "hi"}}}); a.status != http.StatusUnauthorized || a.code() != code {
			t.Fatalf("chat with the run's key answered %d %s after it was refused", a.status, a.code())
		}
	}
}

// listedKey is the run's key as GET /auth/api-keys shows it.
func listedKey(t *testing.T, e *edgeStack, jwt, key string) map[string]any {
	t.Helper()
	a := e.do(t, http.MethodGet, "/auth/api-keys", jwt, nil, nil)
	var l struct{ Keys []map[string]any }
	if a.status != http.StatusOK || json.Unmarshal(a.body, &l) != nil {
		t.Fatalf("list keys: %d", a.status)
	}
	kid := key[len("sk_live_") : len("sk_live_")+8]
	for _, k := range l.Keys {
		if k["kid"] == kid {
			return k
		}
	}
	t.Fatalf("the run's key (kid %s) is not among the user's keys", kid)
	return nil
}

func lifetime(t *testing.T, k map[string]any) time.Duration {
	t.Helper()
	c, err1 := time.Parse(time.RFC3339Nano, k["created_at"].(string))
	x, err2 := time.Parse(time.RFC3339Nano, k["expires_at"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("key times %v %v", k["created_at"], k["expires_at"])
	}
	return x.Sub(c)
}

func noKeyIn(t *testing.T, key string, outs ...[]byte) {
	t.Helper()
	for _, o := range outs {
		if bytes.Contains(o, []byte(key)) || bytes.Contains(o, []byte(key[len(key)-20:])) {
			t.Fatal("edgectl's output holds the run's key")
		}
	}
}

func openAIDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EDGEGUARD_OPENAI_DIR")
	if dir == "" {
		if why := os.Getenv("EDGEGUARD_OPENAI_ERROR"); why != "" || os.Getenv("CI") == "true" {
			t.Fatalf("the openai SDK is not installed (scripts/openai-sdk.sh install): %s", why)
		}
		t.Skip("EDGEGUARD_OPENAI_DIR unset: run through make test (scripts/openai-sdk.sh install)")
	}
	return dir
}

// TestEdgectlRunWithTheOpenAISDK: `edgectl run -- node client.mjs run` —
// the official openai SDK lists models and chats (plain and streamed)
// through the real Kong with the run's throwaway key; edgectl exits with
// the child's code; the key (named after the command, 10 min) is revoked
// within 1 s of the child's exit and refused (key_revoked) ever after.
func TestEdgectlRunWithTheOpenAISDK(t *testing.T) {
	dir := openAIDir(t)
	_, e, u := loggedInEdgectl(t)
	sink, client := newKeySink(t), clientAddr()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	c := u.command(ctx, "run", "--ttl", "10m", "--verbose", "--", "node", filepath.Join(dir, "client.mjs"), "run")
	c.Env = u.env("KEY_SINK="+sink.addr, "MODEL=stub-model", "CHILD_EXIT=7")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	m := sink.wait(t)
	// From the child's exit on: the key must be refused within a second.
	took := refusedWithin(t, e, client, m.Key, "key_revoked", time.Second)
	err := c.Wait()
	exited := time.Since(m.closed)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("edgectl run: %v (want the child's exit code 7); stderr %s", err, stderr.String())
	}
	t.Logf("the run's key was refused %s after the child's exit (edgectl itself was gone %s after it)", took.Round(time.Millisecond), exited.Round(time.Millisecond))
	var res struct {
		Models  []string `json:"models"`
		Content string   `json:"content"`
		Chunks  int      `json:"chunks"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || len(res.Models) == 0 || res.Models[0] != "stub-model" ||
		!strings.HasPrefix(res.Content, "tok0 tok1 tok2") || res.Chunks < 2 {
		t.Fatalf("the SDK through the run's key: %v %q", err, stdout.String())
	}
	if !strings.Contains(stderr.String(), "revoked the run's API key") || !strings.Contains(stderr.String(), "(exit code 7)") {
		t.Fatalf("--verbose: %q", stderr.String())
	}
	noKeyIn(t, m.Key, stdout.Bytes(), stderr.Bytes())
	t.Logf("edgectl --verbose: %s", strings.TrimSpace(stderr.String()))
	stayRefused(t, e, client, m.Key, "key_revoked")

	k := listedKey(t, e, u.token(t), m.Key)
	if name, _ := k["name"].(string); !regexp.MustCompile(`^run:node:[0-9a-f]{6}$`).MatchString(name) || k["status"] != "revoked" ||
		lifetime(t, k) != 10*time.Minute {
		t.Fatalf("the run's key as listed: name %v, status %v, lifetime %s", k["name"], k["status"], lifetime(t, k))
	}
	if roles, _ := k["roles"].([]any); len(roles) == 0 {
		t.Fatalf("the run's key has no roles (want the user's, without admin): %v", k["roles"])
	}
}

// TestEdgectlRunForwardsSignals: SIGTERM, SIGINT or SIGHUP sent to the
// edgectl process reaches the child (the SDK script traps it and exits
// 64+N), edgectl exits with that code, and the key is refused within 1 s.
func TestEdgectlRunForwardsSignals(t *testing.T) {
	dir := openAIDir(t)
	_, e, u := loggedInEdgectl(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			sink, client := newKeySink(t), clientAddr()
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			c := u.command(ctx, "run", "--", "node", filepath.Join(dir, "client.mjs"), "wait")
			c.Env = u.env("KEY_SINK=" + sink.addr)
			var stdout, stderr lockedBuffer
			c.Stdout, c.Stderr = &stdout, &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			m := sink.wait(t)
			// On a failure below, edgectl is killed with the test's context and
			// its child would outlive the test.
			t.Cleanup(func() { killChild(m.PID) })
			if a := withKey(t, e, client, http.MethodGet, "/v1/models", m.Key, nil); a.status != http.StatusOK {
				t.Fatalf("the run's key during the run: %d %s", a.status, a.body)
			}
			if !eventuallyFast(5*time.Second, func() bool { return strings.Contains(stdout.String(), `"ready":true`) }) {
				t.Fatalf("the child is not ready: %q", stdout.String())
			}
			if err := c.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			took := refusedWithin(t, e, client, m.Key, "key_revoked", 2*time.Second)
			err := c.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 64+int(sig) || !strings.Contains(stdout.String(), `"signal":"`+signalName(sig)+`"`) {
				t.Fatalf("edgectl: %v, stdout %q, stderr %q (want the child's 64+%d after it got %s)", err, stdout.String(), stderr.String(), int(sig), sig)
			}
			t.Logf("%s: key refused %s after the signal", sig, took.Round(time.Millisecond))
			if time.Since(sent) > 5*time.Second {
				t.Fatal("the run took too long to end")
			}
			noKeyIn(t, m.Key, stdout.Bytes(), stderr.Bytes())
			stayRefused(t, e, client, m.Key, "key_revoked")
		})
	}
}

// TestEdgectlRunKeyExpiresWhenEdgectlIsKilled: edgectl killed with SIGKILL
// cannot revoke; the key's expiry (--ttl 5s) is the backstop — it works
// until then (the edge caches it: its positive TTL is 60 s) and is refused
// with key_expired from its expires_at on, through the real Kong.
func TestEdgectlRunKeyExpiresWhenEdgectlIsKilled(t *testing.T) {
	dir := openAIDir(t)
	_, e, u := loggedInEdgectl(t)
	sink, client := newKeySink(t), clientAddr()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := u.command(ctx, "run", "--ttl", "5s", "--", "node", filepath.Join(dir, "client.mjs"), "wait")
	c.Env = u.env("KEY_SINK=" + sink.addr)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	m := sink.wait(t)
	t.Cleanup(func() { killChild(m.PID) }) // the orphaned child
	if a := withKey(t, e, client, http.MethodGet, "/v1/models", m.Key, nil); a.status != http.StatusOK {
		t.Fatalf("the run's key: %d %s", a.status, a.body)
	}
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	k := listedKey(t, e, u.token(t), m.Key)
	exp, _ := time.Parse(time.RFC3339Nano, k["expires_at"].(string))
	if k["status"] != "active" || lifetime(t, k) != 5*time.Second {
		t.Fatalf("after SIGKILL: status %v, lifetime %s (want active, 5s)", k["status"], lifetime(t, k))
	}
	if a := withKey(t, e, client, http.MethodGet, "/v1/models", m.Key, nil); a.status != http.StatusOK || time.Now().After(exp) {
		t.Fatalf("the key after edgectl was killed, before its expiry: %d", a.status)
	}
	var lastOK time.Time
	for time.Now().Before(exp.Add(time.Second)) {
		sent := time.Now()
		a := withKey(t, e, client, http.MethodGet, "/v1/models", m.Key, nil)
		now := time.Now()
		switch {
		case a.status == http.StatusOK || a.status == http.StatusTooManyRequests: // 429: authenticated, over the rate limit
			if !sent.Before(exp) {
				t.Fatalf("a request sent %s after the key's expiry was authenticated (%d)", sent.Sub(exp), a.status)
			}
			lastOK = now
		case a.status == http.StatusUnauthorized && a.code() == "key_expired":
			t.Logf("last 200 %s before the expiry, first key_expired %s after it", exp.Sub(lastOK).Round(time.Millisecond), now.Sub(exp).Round(time.Millisecond))
			stayRefused(t, e, client, m.Key, "key_expired")
			return
		default:
			t.Fatalf("the key near its expiry: %d %s", a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the key was not refused as expired within 1 s of its expiry")
}

// killChild kills a run's child that outlived its edgectl — only if pid is
// still that child (client.mjs), never a process that reused the number.
func killChild(pid int) {
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && bytes.Contains(b, []byte("client.mjs")) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func signalName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP"}[s]
}

// lockedBuffer is a writer the test reads while a process writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Bytes() []byte { return []byte(l.String()) }

// eventuallyFast is eventually with a 10 ms step.
func eventuallyFast(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestEdgectlRunNarrowsModelsAndUsageShowsTheRun: `edgectl run --model
// stub-model` with a budget gives the child a key that sees only that
// model (issue 16's narrowing, with issue 15's key models), carries the
// budget, and `edgectl usage --json` afterwards lists the run key's usage
// through the gateway.
func TestEdgectlRunNarrowsModelsAndUsageShowsTheRun(t *testing.T) {
	dir := openAIDir(t)
	_, e, u := loggedInEdgectl(t)
	sink := newKeySink(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	// the dev budgets limit a user per minute, per day and in USD a day: a
	// key's own budget limits each of them too (never above its owner's)
	c := u.command(ctx, "run", "--model", "stub-model", "--tokens-per-minute", "100000", "--tokens-per-day", "5000",
		"--usd-per-day", "0.5", "--", "node", filepath.Join(dir, "client.mjs"), "run")
	c.Env = u.env("KEY_SINK="+sink.addr, "MODEL=stub-model", "CHILD_EXIT=0")
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	m := sink.wait(t)
	if err := c.Wait(); err != nil {
		t.Fatalf("edgectl run: %v; stderr %s", err, stderr.String())
	}
	noKeyIn(t, m.Key, stdout.Bytes(), stderr.Bytes())
	var res struct {
		Models []string `json:"models"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || len(res.Models) != 1 || res.Models[0] != "stub-model" {
		t.Fatalf("the run's key lists %v (want only stub-model): %v %q", res.Models, err, stdout.String())
	}
	k := listedKey(t, e, u.token(t), m.Key)
	if fmt.Sprint(k["models"]) != "[stub-model]" || k["budget"] == nil {
		t.Fatalf("the run's key as listed: models %v, budget %v", k["models"], k["budget"])
	}
	kid, _ := k["kid"].(string)
	// the ledger is written just after each answer: poll briefly
	var out []byte
	if !eventually(10*time.Second, func() bool {
		uctx, ucancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer ucancel()
		var err error
		out, err = u.command(uctx, "usage", "--json").Output()
		return err == nil && bytes.Contains(out, []byte(`"key_id":"`+kid+`"`))
	}) {
		t.Fatalf("edgectl usage does not show the run key %s: %s", kid, out)
	}
	noKeyIn(t, m.Key, out)
	var usage struct {
		Usage []struct {
			KeyID  string `json:"key_id"`
			Model  string `json:"model"`
			Tokens int64  `json:"tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(out, &usage); err != nil {
		t.Fatal(err)
	}
	for _, r := range usage.Usage {
		if r.KeyID == kid && (r.Model != "stub-model" || r.Tokens <= 0) {
			t.Fatalf("the run key's usage row: %+v", r)
		}
	}
}

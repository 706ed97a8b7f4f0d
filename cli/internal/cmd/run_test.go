package cmd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/runcmd"
	"github.com/edgeguard/edgeguard/pkg/apikey"
)

// childArg makes the test binary a child of "edgectl run" (TestMain).
const childArg = "edgectl-test-child"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == childArg {
		os.Exit(testChild(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

// testChild is what a run's child does, by mode:
//
//	env NAME...  prints one JSON line: the SHA-256 of OPENAI_API_KEY, the
//	             base URL, for each NAME its value (or the SHA-256 of an
//	             sk_ value), and whether EDGEGUARD_API_KEY is set
//	exit N       exits N
//	trap         prints "ready", then on SIGINT/TERM/HUP/QUIT/USR1/USR2
//	             prints "got <n>" and exits 64+n
//	wait         prints "ready", then waits (default signal actions)
//	kill         kills itself with SIGKILL
//	panic        panics (a Go crash: exit 2)
func testChild(mode string, args []string) int {
	switch mode {
	case "env":
		sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
		vars := map[string]string{}
		for _, n := range args {
			if v, ok := os.LookupEnv(n); ok {
				if strings.HasPrefix(v, "sk_") {
					v = "sha256:" + sum(v)
				}
				vars[n] = v
			}
		}
		_, edge := os.LookupEnv("EDGEGUARD_API_KEY")
		b, _ := json.Marshal(map[string]any{"key": "sha256:" + sum(os.Getenv("OPENAI_API_KEY")),
			"base": os.Getenv("OPENAI_BASE_URL"), "vars": vars, "edgeguard_api_key": edge, "args": args})
		fmt.Println(string(b))
		return 0
	case "exit":
		n, _ := strconv.Atoi(args[0])
		return n
	case "trap":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
		fmt.Println("ready")
		s := (<-c).(syscall.Signal)
		fmt.Printf("got %d\n", int(s))
		return 64 + int(s)
	case "wait":
		fmt.Println("ready")
		select {}
	case "kill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "panic":
		panic("the child crashed")
	}
	return 99
}

// syncBuffer is a writer the test reads while the run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeSignals stands in for os/signal: the test delivers signals to the
// run's channel.
type fakeSignals struct {
	mu  sync.Mutex
	c   chan<- os.Signal
	sig []os.Signal
}

func (f *fakeSignals) hooks(h runcmd.Hooks) runcmd.Hooks {
	h.Notify = func(c chan<- os.Signal, sig ...os.Signal) {
		f.mu.Lock()
		f.c, f.sig = c, sig
		f.mu.Unlock()
	}
	h.Stop = func(chan<- os.Signal) {
		f.mu.Lock()
		f.c = nil
		f.mu.Unlock()
	}
	return h
}

func (f *fakeSignals) send(t *testing.T, s os.Signal) {
	t.Helper()
	f.mu.Lock()
	c, subscribed := f.c, slices.Contains(f.sig, s)
	f.mu.Unlock()
	if c == nil || !subscribed {
		t.Fatalf("the run does not listen for %v", s)
	}
	c <- s
}

// runOutcome is one "edgectl run".
type runOutcome struct {
	code           int
	stdout, stderr string
}

// edgectlRun runs "edgectl run --api <fake> ARGS" for u in process.
func (u *user) edgectlRun(h runcmd.Hooks, stdout, stderr *syncBuffer, apiURL string, args ...string) int {
	e := u.env(stdout, stderr)
	e.RunHooks = h
	return e.Run(u.t.Context(), append([]string{"run", "--api", apiURL}, args...))
}

func runChild(t *testing.T, u *user, api *fakeLLMAPI, h runcmd.Hooks, args ...string) runOutcome {
	t.Helper()
	var out, errb syncBuffer
	code := u.edgectlRun(h, &out, &errb, api.srv.URL, args...)
	return runOutcome{code, out.String(), errb.String()}
}

// child is the command line of the test binary as a run's child.
func child(t *testing.T, mode string, args ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"--", exe, childArg, mode}, args...)
}

// created returns the run's create request body and the id of the key it
// got, and checks that exactly that key was revoked afterwards.
func createdAndRevoked(t *testing.T, api *fakeLLMAPI) map[string]any {
	t.Helper()
	reqs := api.requests()
	if len(reqs) < 2 || !strings.HasPrefix(reqs[0], "POST /auth/api-keys ") {
		t.Fatalf("requests %q: want a create, then a revocation", reqs)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(reqs[0], "POST /auth/api-keys ")), &body); err != nil {
		t.Fatal(err)
	}
	if want := "DELETE /auth/api-keys/6f1c0000-0000-4000-8000-000000000001 "; reqs[len(reqs)-1] != want {
		t.Fatalf("last request %q, want %q", reqs[len(reqs)-1], want)
	}
	return body
}

func noKey(t *testing.T, r runOutcome, api *fakeLLMAPI, kcSecrets []string) {
	t.Helper()
	for _, k := range api.keys {
		if strings.Contains(r.stdout+r.stderr, k) || strings.Contains(r.stdout+r.stderr, k[len(k)-20:]) {
			t.Fatalf("the run's key was printed: stdout %q stderr %q", r.stdout, r.stderr)
		}
	}
	noTokens(t, result{stdout: r.stdout, stderr: r.stderr}, kcSecrets)
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(h[:]) }

// TestRunGivesTheChildAThrowawayKeyAndRevokesItWhenItExits: the child sees
// the new key in OPENAI_API_KEY (and the --key-env names), the gateway's
// /v1 in OPENAI_BASE_URL (and the --base-url-env names), not
// EDGEGUARD_API_KEY; the key is created with the run's expiry in seconds,
// named after the command, and revoked when the child exits; edgectl prints
// nothing of its own (and never the key, not with --verbose).
func TestRunGivesTheChildAThrowawayKeyAndRevokesItWhenItExits(t *testing.T) {
	u, kc, api := loggedIn(t)
	old, _ := apikey.Generate("live")
	h := runcmd.Hooks{Environ: func() []string {
		return append(os.Environ(), "EDGEGUARD_API_KEY="+old.Secret(), "OPENAI_API_KEY=sk-from-before", "KEEP_ME=1", "LLM_BASE=x")
	}}
	r := runChild(t, u, api, h, append([]string{"--key-env", "MY_KEY,OTHER_KEY", "--base-url-env", "LLM_BASE"},
		child(t, "env", "MY_KEY", "OTHER_KEY", "LLM_BASE", "KEEP_ME", "--flag-of-the-child")...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q (want 0 and nothing)", r.code, r.stderr)
	}
	var got struct {
		Key, Base string
		Vars      map[string]string
		EdgeKey   bool `json:"edgeguard_api_key"`
		Args      []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("child output %q: %v", r.stdout, err)
	}
	key := api.keys[0]
	if got.Key != sha(key) || got.Base != kc.URL()+"/v1" || got.EdgeKey {
		t.Fatalf("child env: key is the new one %t, base %q, EDGEGUARD_API_KEY set %t", got.Key == sha(key), got.Base, got.EdgeKey)
	}
	want := map[string]string{"MY_KEY": sha(key), "OTHER_KEY": sha(key), "LLM_BASE": kc.URL() + "/v1", "KEEP_ME": "1"}
	if fmt.Sprint(got.Vars) != fmt.Sprint(want) || !slices.Contains(got.Args, "--flag-of-the-child") {
		t.Fatalf("child vars %v args %v, want %v", got.Vars, got.Args, want)
	}
	body := createdAndRevoked(t, api)
	name, _ := body["name"].(string)
	if body["expires_in_seconds"] != float64(3600) || body["roles"] != nil || body["expires_in_days"] != nil || body["budget"] != nil || body["models"] != nil ||
		!strings.HasPrefix(name, "run:"+filepath.Base(os.Args[0])+":") || len(name) != len("run:"+filepath.Base(os.Args[0])+":")+6 {
		t.Fatalf("create request %v", body)
	}
	if auth := api.auths[0]; auth != "Bearer "+kc.issued[0] {
		t.Fatal("the key was not created with the login's access token")
	}
	noKey(t, r, api, append(kc.secrets(), old.Secret()))

	// --verbose: which key, and its revocation, on stderr — never the key.
	u2, kc2, api2 := loggedIn(t)
	r = runChild(t, u2, api2, runcmd.Hooks{}, append([]string{"--verbose", "--ttl", "90s", "--role", "user", "--name", "nightly",
		"--model", "qwen2.5-7b", "--model", "llama-3.1-70b", "--tokens-per-day", "200000", "--usd-per-day", "0.50"},
		child(t, "exit", "0")...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "kid "+api2.lastKID()) || !strings.Contains(r.stderr, "revoked the run's API key") ||
		!strings.Contains(r.stderr, "(exit code 0)") || !strings.Contains(r.stderr, "models qwen2.5-7b,llama-3.1-70b, budget tokens/day=200000,usd/day=0.50,") {
		t.Fatalf("--verbose: exit %d stderr %q", r.code, r.stderr)
	}
	body = createdAndRevoked(t, api2)
	if body["expires_in_seconds"] != float64(90) || fmt.Sprint(body["roles"]) != "[user]" || body["name"] != "nightly" {
		t.Fatalf("create request %v", body)
	}
	// the key's budget and models, exactly: USD as the string given
	if raw := strings.TrimPrefix(api2.requests()[0], "POST /auth/api-keys "); !strings.Contains(raw,
		`"budget":{"tokens_per_day":200000,"usd_per_day":"0.50"},"expires_in_seconds":90,"models":["qwen2.5-7b","llama-3.1-70b"],`) {
		t.Fatalf("create request %s", raw)
	}
	noKey(t, r, api2, kc2.secrets())

	// --no-roles: a key without roles.
	u3, _, api3 := loggedIn(t)
	if r := runChild(t, u3, api3, runcmd.Hooks{}, append([]string{"--no-roles"}, child(t, "exit", "0")...)...); r.code != 0 {
		t.Fatalf("--no-roles: exit %d %q", r.code, r.stderr)
	}
	if body := createdAndRevoked(t, api3); fmt.Sprint(body["roles"]) != "[]" {
		t.Fatalf("--no-roles request %v", body)
	}
}

func (f *fakeLLMAPI) lastKID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, _ := apikey.Parse(f.keys[len(f.keys)-1])
	return k.KID()
}

// TestRunExitCodeIsTheChilds: whatever the child exits with — a code, a
// signal that killed it, a Go panic, SIGKILL — is edgectl's exit code
// (128+N for signal N), and the key is revoked every time.
func TestRunExitCodeIsTheChilds(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"exit 0", []string{"exit", "0"}, 0},
		{"exit 1", []string{"exit", "1"}, 1},
		{"exit 3", []string{"exit", "3"}, 3},
		{"exit 125 (edgectl's own code, passed through)", []string{"exit", "125"}, 125},
		{"exit 255", []string{"exit", "255"}, 255},
		{"crash: a Go panic", []string{"panic"}, 2},
		{"crash: SIGKILL", []string{"kill"}, 128 + int(syscall.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			r := runChild(t, u, api, runcmd.Hooks{}, child(t, tc.args[0], tc.args[1:]...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if strings.Contains(r.stderr, "edgectl:") {
				t.Fatalf("edgectl said something: %q", r.stderr)
			}
			createdAndRevoked(t, api)
			noKey(t, r, api, kc.secrets())
		})
	}
}

// runAsync starts a run in the background and waits until its child says
// "ready".
func runAsync(t *testing.T, u *user, api *fakeLLMAPI, h runcmd.Hooks, args ...string) (wait func() runOutcome) {
	t.Helper()
	var out, errb syncBuffer
	codec := make(chan int, 1)
	go func() { codec <- u.edgectlRun(h, &out, &errb, api.srv.URL, args...) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "ready\n") {
		select {
		case code := <-codec:
			t.Fatalf("the run ended early: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child never got ready: stdout %q, stderr %q", out.String(), errb.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() runOutcome {
		select {
		case code := <-codec:
			return runOutcome{code, out.String(), errb.String()}
		case <-time.After(15 * time.Second):
			t.Fatalf("the run did not end: stdout %q, stderr %q", out.String(), errb.String())
			return runOutcome{}
		}
	}
}

// TestRunForwardsSignals: each signal edgectl receives during a run reaches
// the child (which handles it and exits 64+N, or dies of it: 128+N), the
// exit code is the child's, and the key is revoked. With no terminal, SIGINT
// and SIGQUIT are forwarded too (from a terminal they already reached the
// child: see runcmd.forward).
func TestRunForwardsSignals(t *testing.T) {
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2} {
		t.Run(s.String(), func(t *testing.T) {
			u, kc, api := loggedIn(t)
			sigs := &fakeSignals{}
			wait := runAsync(t, u, api, sigs.hooks(runcmd.Hooks{}), child(t, "trap")...)
			sigs.send(t, s)
			r := wait()
			if r.code != 64+int(s) || !strings.Contains(r.stdout, fmt.Sprintf("got %d\n", int(s))) {
				t.Fatalf("exit %d stdout %q stderr %q; want the child's 64+%d", r.code, r.stdout, r.stderr, int(s))
			}
			createdAndRevoked(t, api)
			noKey(t, r, api, kc.secrets())
		})
	}
	t.Run("the child dies of it", func(t *testing.T) {
		u, _, api := loggedIn(t)
		sigs := &fakeSignals{}
		wait := runAsync(t, u, api, sigs.hooks(runcmd.Hooks{}), child(t, "wait")...)
		sigs.send(t, syscall.SIGTERM)
		if r := wait(); r.code != 128+int(syscall.SIGTERM) {
			t.Fatalf("exit %d, want 143 (stderr %q)", r.code, r.stderr)
		}
		createdAndRevoked(t, api)
	})
}

// TestRunRevokesWithAFreshTokenAfterALongRun: the key is revoked with an
// access token valid at the end, however long the run took — refreshed at
// exit, and, while the child runs, now and then (keep-alive: the realm ends
// sessions idle for 30 min, and the run's key must still be revocable).
func TestRunRevokesWithAFreshTokenAfterALongRun(t *testing.T) {
	refreshes := func(kc *fakeKeycloak) int {
		kc.mu.Lock()
		defer kc.mu.Unlock()
		return kc.refreshes
	}
	revokedWithTheLatestToken := func(t *testing.T, kc *fakeKeycloak, api *fakeLLMAPI) {
		t.Helper()
		createdAndRevoked(t, api)
		api.mu.Lock()
		last := api.auths[len(api.auths)-1]
		api.mu.Unlock()
		kc.mu.Lock()
		latest := kc.issued[len(kc.issued)-2]
		kc.mu.Unlock()
		if last != "Bearer "+latest {
			t.Fatal("the key was not revoked with the latest access token")
		}
	}
	t.Run("refreshed at exit", func(t *testing.T) {
		u, kc, api := loggedIn(t)
		sigs := &fakeSignals{}
		wait := runAsync(t, u, api, sigs.hooks(runcmd.Hooks{KeepAlive: time.Hour}), child(t, "trap")...)
		u.clock.Add(10 * time.Minute) // the access token (5 min) has expired
		sigs.send(t, syscall.SIGTERM)
		if r := wait(); r.code != 64+int(syscall.SIGTERM) || r.stderr != "" {
			t.Fatalf("exit %d (stderr %q)", r.code, r.stderr)
		}
		if n := refreshes(kc); n != 1 {
			t.Fatalf("%d refreshes, want 1 (at exit)", n)
		}
		revokedWithTheLatestToken(t, kc, api)
	})
	t.Run("kept alive during the run", func(t *testing.T) {
		u, kc, api := loggedIn(t)
		sigs := &fakeSignals{}
		wait := runAsync(t, u, api, sigs.hooks(runcmd.Hooks{KeepAlive: 10 * time.Millisecond}), child(t, "trap")...)
		u.clock.Add(10 * time.Minute)
		deadline := time.Now().Add(5 * time.Second)
		for refreshes(kc) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the login was not refreshed during the run")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // more ticks: a fresh token is not refreshed again
		sigs.send(t, syscall.SIGTERM)
		if r := wait(); r.code != 64+int(syscall.SIGTERM) || r.stderr != "" {
			t.Fatalf("exit %d (stderr %q)", r.code, r.stderr)
		}
		if n := refreshes(kc); n != 1 {
			t.Fatalf("%d refreshes, want 1", n)
		}
		revokedWithTheLatestToken(t, kc, api)
	})
}

// TestRunSaysWhenTheKeyCouldNotBeRevoked: llm-api refusing the revocation
// (503, retried) is said on stderr with the key's id and expiry (never the
// key); a child that exited 0 makes edgectl exit 125, any other code stays.
func TestRunSaysWhenTheKeyCouldNotBeRevoked(t *testing.T) {
	for _, tc := range []struct {
		child string
		code  int
	}{{"0", runcmd.ExitFailed}, {"3", 3}} {
		t.Run("child exits "+tc.child, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			api.deleteStatus = 503
			r := runChild(t, u, api, runcmd.Hooks{}, child(t, "exit", tc.child)...)
			if r.code != tc.code || !strings.Contains(r.stderr, "could not revoke the run's API key (id 6f1c0000-0000-4000-8000-000000000001, kid "+api.lastKID()) ||
				!strings.Contains(r.stderr, "stays valid until 2030-06-05T07:08:09Z") {
				t.Fatalf("exit %d stderr %q", r.code, r.stderr)
			}
			deletes := 0
			for _, q := range api.requests() {
				if strings.HasPrefix(q, "DELETE ") {
					deletes++
				}
			}
			if deletes != 4 {
				t.Fatalf("%d revocation attempts, want 4", deletes)
			}
			noKey(t, r, api, kc.secrets())
		})
	}
}

// TestRunFailuresBeforeTheChild: usage errors (2), a command that is not
// found (127) or cannot run (126), no login or a refused key (125): the
// child never runs, and no key is left behind (none is created when the
// command is missing).
func TestRunFailuresBeforeTheChild(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho ran\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exitZero := child(t, "exit", "0")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stderr  string
		creates bool
	}{
		{"no command", []string{"--"}, 2, "give the command to run", false},
		{"--ttl 0", append([]string{"--ttl", "0"}, exitZero...), 2, "--ttl must be whole seconds between 1s and 1h0m0s", false},
		{"--ttl over 1 h", append([]string{"--ttl", "61m"}, exitZero...), 2, "--ttl must be", false},
		{"--ttl not whole seconds", append([]string{"--ttl", "1500ms"}, exitZero...), 2, "--ttl must be", false},
		{"--role with --no-roles", append([]string{"--role", "user", "--no-roles"}, exitZero...), 2, "exclude each other", false},
		{"bad variable name", append([]string{"--key-env", "A-B"}, exitZero...), 2, `--key-env "A-B": not a variable name`, false},
		{"EDGEGUARD_API_KEY as a key variable", append([]string{"--key-env", "EDGEGUARD_API_KEY"}, exitZero...), 2, "removes that variable", false},
		{"one variable for key and URL", append([]string{"--base-url-env", "OPENAI_API_KEY"}, exitZero...), 2, "already holds the key", false},
		{"plain http base URL", append([]string{"--base-url", "http://llm.example.com/v1"}, exitZero...), 2, "--base-url", false},
		{"--usd-per-day as an exponent", append([]string{"--usd-per-day", "1e9"}, exitZero...), 2, `invalid argument "1e9" for "--usd-per-day"`, false},
		{"--usd-per-month with 10 decimals", append([]string{"--usd-per-month", "1.0000000001"}, exitZero...), 2, "more than 9 decimals", false},
		{"--tokens-per-minute negative", append([]string{"--tokens-per-minute", "-1"}, exitZero...), 2, "--tokens-per-minute", false},
		{"--model twice", append([]string{"--model", "m", "--model", "m"}, exitZero...), 2, "given twice", false},
		{"command not found", []string{"--", "edgectl-no-such-command-xyz"}, runcmd.ExitNotFound, "edgectl-no-such-command-xyz: command not found", false},
		{"command not executable", []string{"--", notExec}, runcmd.ExitCannotRun, "permission denied", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, kc, api := loggedIn(t)
			r := runChild(t, u, api, runcmd.Hooks{}, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) || r.stdout != "" {
				t.Fatalf("exit %d stdout %q stderr %q; want %d with %q", r.code, r.stdout, r.stderr, tc.code, tc.stderr)
			}
			if n := len(api.requests()); n != 0 {
				t.Fatalf("%d requests to llm-api, want none", n)
			}
			noKey(t, r, api, kc.secrets())
		})
	}

	t.Run("not logged in", func(t *testing.T) {
		u := newUser(t, &fakeClock{now: time.Now()})
		api := newFakeLLMAPI(t, func() string { return "x" })
		r := runChild(t, u, api, runcmd.Hooks{}, append([]string{"--server", "https://edge.example.com"}, exitZero...)...)
		if r.code != runcmd.ExitFailed || !strings.Contains(r.stderr, "not logged in to https://edge.example.com") || len(api.requests()) != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
	})
	t.Run("key refused", func(t *testing.T) {
		u, _, api := loggedIn(t)
		api.failure = &struct {
			status     int
			code, body string
		}{status: 403, body: `{"error":{"code":"roles_not_held","message":"requested roles are not all held"}}`}
		r := runChild(t, u, api, runcmd.Hooks{}, append([]string{"--role", "admin"}, child(t, "env")...)...)
		if r.code != runcmd.ExitFailed || !strings.Contains(r.stderr, "creating the run's API key: llm-api answered 403 roles_not_held") || r.stdout != "" {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("budget beyond the owner's", func(t *testing.T) {
		u, _, api := loggedIn(t)
		api.failure = &struct {
			status     int
			code, body string
		}{status: 400, body: `{"error":{"code":"budget_exceeds_owner","message":"budget.tokens_per_day: at most 100000"}}`}
		r := runChild(t, u, api, runcmd.Hooks{}, append([]string{"--tokens-per-day", "500000"}, child(t, "env")...)...)
		if r.code != runcmd.ExitFailed || r.stdout != "" ||
			!strings.Contains(r.stderr, "creating the run's API key: llm-api answered 400 budget_exceeds_owner: budget.tokens_per_day: at most 100000") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("a signal while the key is created", func(t *testing.T) {
		u, _, api := loggedIn(t)
		sigs := &fakeSignals{}
		api.onCreate = func() { sigs.send(t, syscall.SIGTERM) }
		r := runChild(t, u, api, sigs.hooks(runcmd.Hooks{}), child(t, "env")...)
		if r.code != 128+int(syscall.SIGTERM) || r.stdout != "" || !strings.Contains(r.stderr, "run cancelled before the command started") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		createdAndRevoked(t, api)
	})
}

// snapshot maps every file and directory under the roots to its mode and
// content digest.
func snapshot(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			v := info.Mode().String()
			if d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				v += " " + sha(string(b))
			}
			out[p] = v
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestRunWritesNothing: with HOME, the XDG directories, TMPDIR and the
// working directory in a fresh tree, a run — key created, child run, key
// revoked — leaves every file and directory as it was (edgectl's config
// directory included), and the key is in none of them.
func TestRunWritesNothing(t *testing.T) {
	u, kc, api := loggedIn(t)
	root := t.TempDir()
	for _, v := range []string{"HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR"} {
		dir := filepath.Join(root, strings.ToLower(v))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Setenv(v, dir)
	}
	wd := filepath.Join(root, "work")
	if err := os.Mkdir(wd, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(wd)
	before := snapshot(t, root, u.dir)
	r := runChild(t, u, api, runcmd.Hooks{}, append([]string{"--verbose"}, child(t, "env")...)...)
	if r.code != 0 {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	createdAndRevoked(t, api)
	after := snapshot(t, root, u.dir)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("the run changed the file system:\nbefore %v\nafter  %v", before, after)
	}
	for p := range after {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(api.keys[0])) {
			t.Fatalf("%s holds the key", p)
		}
	}
	noKey(t, r, api, kc.secrets())
}

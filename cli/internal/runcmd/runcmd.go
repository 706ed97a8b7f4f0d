// Package runcmd is "edgectl run -- COMMAND": it runs COMMAND with a
// throwaway API key in its environment — OPENAI_API_KEY, with
// OPENAI_BASE_URL pointing at the gateway's /v1, so the official OpenAI SDKs
// work unchanged — and revokes the key as soon as the command exits.
//
// The key lives only in edgectl's memory and in the child's environment: it
// is never written to disk and never printed (not with --verbose either).
// It is created for the run through llm-api's /auth/api-keys with the stored
// login (package keyscmd's client), named after the command, with the roles,
// models and budget the flags narrow it to (never more than the owner's:
// llm-api refuses roles the caller does not hold, models and budgets beyond
// the owner's) and an expiry of --ttl seconds (at most 1 h): the
// backstop when edgectl cannot revoke it (edgectl killed with SIGKILL, the
// machine gone, the network down at exit).
//
// The child's exit code is edgectl's (128+N when a signal N ended it);
// SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGINT and SIGQUIT sent to edgectl are
// forwarded to the child. It is not a sandbox: the child may use the key as
// its roles allow until the run ends.
package runcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/budgetflags"
	"github.com/edgeguard/edgeguard/cli/internal/deviceflow"
	"github.com/edgeguard/edgeguard/cli/internal/keyscmd"
	"github.com/edgeguard/edgeguard/cli/internal/llmapi"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
)

// Limits and defaults.
const (
	// MaxTTL is the longest life of a run's key; DefaultTTL its default.
	MaxTTL     = time.Hour
	DefaultTTL = time.Hour
	// DefaultKeepAlive is how often the login is refreshed while the child
	// runs, so that it is still valid to revoke the key at the end (the
	// realm ends sessions idle for 30 min).
	DefaultKeepAlive = time.Minute
	// RevokeTimeout bounds the revocation, retries included.
	RevokeTimeout = 15 * time.Second

	EnvKey     = "OPENAI_API_KEY"
	EnvBaseURL = "OPENAI_BASE_URL"
)

// Exit codes of edgectl's own failures, as env(1) and timeout(1) have them.
const (
	// ExitFailed: edgectl failed — not logged in, no key created — or the
	// child exited 0 but its key could not be revoked.
	ExitFailed = 125
	// ExitCannotRun: the command was found but could not be started.
	ExitCannotRun = 126
	// ExitNotFound: the command was not found.
	ExitNotFound = 127
)

// Hooks are what a run takes from the machine; the zero value is the real
// one. Tests inject signals and the environment.
type Hooks struct {
	// Notify and Stop subscribe and unsubscribe the channel that receives
	// the signals to forward (nil: os/signal).
	Notify func(c chan<- os.Signal, sig ...os.Signal)
	Stop   func(c chan<- os.Signal)
	// Environ is the environment the child inherits (nil: os.Environ).
	Environ func() []string
	// KeepAlive is how often the login is refreshed during the run
	// (0: DefaultKeepAlive).
	KeepAlive time.Duration
}

type flags struct {
	server, api, baseURL, name string
	insecure, noRoles, verbose bool
	ttl                        time.Duration
	roles, keyEnv, baseURLEnv  []string
	budget                     budgetflags.Flags // the key's own budget and models
}

// New returns the "run" command.
func New(o session.Options, h Hooks) *cobra.Command {
	fl := &flags{}
	c := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARG]...",
		Short: "Run a command with a throwaway API key in its environment, revoked when it exits",
		Long: `Run COMMAND with a throwaway API key created for this run with your login:
OPENAI_API_KEY holds the key and OPENAI_BASE_URL the gateway's /v1, so the
OpenAI SDKs work unchanged. The key is revoked as soon as COMMAND exits
(normally, by a signal, or by crashing); it also expires after --ttl (at most
1h), the backstop if edgectl itself is killed. It is never written to disk
and never printed. The child inherits edgectl's environment without
EDGEGUARD_API_KEY.

The key has your roles without admin, or those --role names; your models, or
those --model names (repeatable); your budget, or a budget of its own within
yours given by --tokens-per-minute, --tokens-per-day, --tokens-per-month,
--usd-per-day, --usd-per-month (USD as exact decimals, e.g. 2.5). llm-api
refuses anything beyond what you hold (roles_not_held, models_not_allowed,
budget_exceeds_owner): a run's key never has more than its owner.

The exit code is COMMAND's (128+N if signal N ended it); 125 if edgectl
failed (not logged in, no key) or could not revoke the key after COMMAND
exited 0; 126 if COMMAND cannot be run, 127 if it is not found; 2 on a usage
error. SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGINT and SIGQUIT are forwarded to
COMMAND (SIGINT and SIGQUIT from the terminal already reach it: edgectl does
not send them twice).`,
		Example: `  edgectl run -- python agent.py
  edgectl run --ttl 10m --role user -- node script.mjs
  edgectl run --model qwen2.5-7b --tokens-per-day 200000 --usd-per-day 0.5 -- python agent.py
  edgectl run --key-env ANTHROPIC_API_KEY --base-url-env LLM_BASE_URL -- ./tool`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] == "" {
				return errors.New("run: give the command to run after --")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			r := &runner{o: o, h: h, fl: fl, stdin: c.InOrStdin(), stdout: c.OutOrStdout(), stderr: c.ErrOrStderr()}
			return r.run(c.Context(), args)
		},
	}
	c.Flags().SetInterspersed(false) // everything after COMMAND is its own
	f := c.Flags()
	f.StringVar(&fl.server, "server", "", "the server you logged in to (default $"+session.EnvServer+", else the last login)")
	f.StringVar(&fl.api, "api", "", "llm-api's public base URL for the key API (default: the server URL)")
	f.StringVar(&fl.baseURL, "base-url", "", "the model API's base URL given to the command (default: <server>/v1)")
	f.BoolVar(&fl.insecure, "insecure-http", false, "allow plain http to a non-loopback host")
	f.DurationVar(&fl.ttl, "ttl", DefaultTTL, "the key's lifetime, whole seconds, 1s..1h: it expires then even if edgectl cannot revoke it")
	f.StringSliceVar(&fl.roles, "role", nil, "a realm role you hold, comma-separated or repeated (default: your roles without admin)")
	f.BoolVar(&fl.noRoles, "no-roles", false, "a key without roles")
	fl.budget.Add(f, "the key's")
	f.StringVar(&fl.name, "name", "", "the key's name (default run:<command>:<random>)")
	f.StringSliceVar(&fl.keyEnv, "key-env", nil, "also put the key in this variable (repeatable)")
	f.StringSliceVar(&fl.baseURLEnv, "base-url-env", nil, "also put the base URL in this variable (repeatable)")
	f.BoolVar(&fl.verbose, "verbose", false, "say on stderr which key the run got (id, kid, roles, expiry) and when it was revoked — never the key")
	return c
}

type runner struct {
	o              session.Options
	h              Hooks
	fl             *flags
	stdin          io.Reader
	stdout, stderr io.Writer
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// check validates the flags (usage errors) and returns the variables of the
// child: name → "key" or "base".
func (fl *flags) check() (map[string]string, error) {
	if fl.ttl < time.Second || fl.ttl > MaxTTL || fl.ttl%time.Second != 0 {
		return nil, fmt.Errorf("--ttl must be whole seconds between 1s and %s", MaxTTL)
	}
	if fl.noRoles && len(fl.roles) > 0 {
		return nil, errors.New("--role and --no-roles exclude each other")
	}
	if fl.name != "" && strings.TrimSpace(fl.name) == "" {
		return nil, errors.New("--name is blank")
	}
	vars := map[string]string{EnvKey: "key", EnvBaseURL: "base"}
	add := func(flag, kind string, names []string) error {
		for _, n := range names {
			if !envName.MatchString(n) {
				return fmt.Errorf("%s %q: not a variable name ([A-Za-z_][A-Za-z0-9_]*)", flag, session.Sanitize(n, 64))
			}
			if n == session.EnvAPIKey {
				return fmt.Errorf("%s %s: edgectl removes that variable from the command's environment", flag, n)
			}
			if k, ok := vars[n]; ok && k != kind {
				return fmt.Errorf("%s %s: that variable already holds the %s", flag, n, map[string]string{"key": "key", "base": "base URL"}[k])
			}
			vars[n] = kind
		}
		return nil
	}
	if err := add("--key-env", "key", fl.keyEnv); err != nil {
		return nil, err
	}
	if err := add("--base-url-env", "base", fl.baseURLEnv); err != nil {
		return nil, err
	}
	return vars, nil
}

func (r *runner) run(ctx context.Context, args []string) error {
	vars, err := r.fl.check()
	if err != nil {
		return err
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return &outcome.Exit{Code: ExitNotFound, Err: fmt.Errorf("run: %s: command not found", session.Sanitize(args[0], 200))}
		}
		return &outcome.Exit{Code: ExitCannotRun, Err: fmt.Errorf("run: %s: %v", session.Sanitize(args[0], 200), errors.Unwrap(err))}
	}

	// Signals are ours from here on: none may end edgectl between the key's
	// creation and its revocation.
	sigc := make(chan os.Signal, 16)
	notify, stop := r.h.Notify, r.h.Stop
	if notify == nil {
		notify, stop = signal.Notify, signal.Stop
	}
	notify(sigc, forwarded...)
	defer stop(sigc)

	cl, err := keyscmd.Open(ctx, r.o, llmapi.Conn{Server: r.fl.server, API: r.fl.api, Insecure: r.fl.insecure})
	if err != nil {
		if !outcome.IsFailure(err) {
			return err // usage: no server, a bad --server or --api
		}
		return &outcome.Exit{Code: ExitFailed, Err: err}
	}
	base, err := r.baseURL(cl.Server())
	if err != nil {
		return err
	}
	if cl.Ignored != "" && r.fl.verbose {
		fmt.Fprintf(r.stderr, "edgectl: %s is ignored and not given to the command\n", session.EnvAPIKey)
	}

	name := r.fl.name
	if name == "" {
		name = defaultName(args[0])
	}
	k, err := keyscmd.Create(ctx, cl, keyscmd.CreateRequest{Name: name, ExpiresInSeconds: int64(r.fl.ttl / time.Second),
		Roles: r.fl.roles, NoRoles: r.fl.noRoles, Budget: &r.fl.budget.Limits, Models: r.fl.budget.Models})
	if err != nil {
		if s, ok := pending(sigc); ok {
			return &outcome.Exit{Code: 128 + signum(s), Err: errors.New("run cancelled before the command started")}
		}
		return &outcome.Exit{Code: ExitFailed, Err: fmt.Errorf("creating the run's API key: %w", err)}
	}
	expires := time.Now().Add(r.fl.ttl)
	if k.ExpiresAt != nil {
		expires = *k.ExpiresAt
	}
	if r.fl.verbose {
		fmt.Fprintf(r.stderr, "edgectl: API key %q (id %s, kid %s, roles %s, models %s, budget %s, expires %s) for %s; %s=%s\n",
			session.Sanitize(k.Name, 64), session.Sanitize(k.ID, 64), session.Sanitize(k.KID, 16), roleList(k.Roles),
			keyscmd.ModelsOf(k), keyscmd.BudgetOf(k), expires.UTC().Format(time.RFC3339),
			session.Sanitize(filepath.Base(args[0]), 64), EnvBaseURL, base)
	}
	bg := context.WithoutCancel(ctx)
	defer func() {
		if p := recover(); p != nil { // a bug must not leave the key alive
			_ = revoke(bg, cl, k.ID)
			panic(p)
		}
	}()
	if s, ok := pending(sigc); ok {
		r.revokeAndReport(bg, cl, k, expires, time.Now(), "")
		return &outcome.Exit{Code: 128 + signum(s), Err: errors.New("run cancelled before the command started")}
	}

	child := exec.Command(path, args[1:]...)
	child.Args[0] = args[0]
	child.Env = childEnv(r.environ(), vars, k.Key, base)
	child.Stdin, child.Stdout, child.Stderr = r.stdin, r.stdout, r.stderr
	child.WaitDelay = time.Second // a grandchild holding a pipe does not delay the revocation
	if err := child.Start(); err != nil {
		r.revokeAndReport(bg, cl, k, expires, time.Now(), "")
		return &outcome.Exit{Code: ExitCannotRun, Err: fmt.Errorf("run: %s: %v", session.Sanitize(args[0], 200), unwrapPath(err))}
	}
	k.Key = "" // the child has it; edgectl needs only the id from here on

	done := make(chan struct{})
	go func() { _ = child.Wait(); close(done) }()
	stopKeep := make(chan struct{})
	keptAlive, keepFailed := r.keepAlive(bg, cl, stopKeep)
	expiry := time.NewTimer(time.Until(expires))
	defer expiry.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case s := <-sigc:
			r.forward(child.Process, s)
		case err := <-keepFailed:
			fmt.Fprintf(r.stderr, "edgectl: the login could not be refreshed (%v): the run's key may not be revoked at exit; it expires at %s\n",
				err, expires.UTC().Format(time.RFC3339))
		case <-expiry.C:
			fmt.Fprintf(r.stderr, "edgectl: the run's API key expired at %s (--ttl %s): the command's requests with it now fail\n",
				expires.UTC().Format(time.RFC3339), r.fl.ttl)
		}
	}
	exited := time.Now()
	close(stopKeep) // a refresh under way finishes; the revocation waits for it on the credential lock
	code := exitCode(child.ProcessState)
	rerr := r.revokeAndReport(bg, cl, k, expires, exited, fmt.Sprintf(" (exit code %d)", code))
	<-keptAlive
	if rerr != nil && code == 0 {
		return &outcome.Exit{Code: ExitFailed}
	}
	if code == 0 {
		return nil
	}
	return &outcome.Exit{Code: code}
}

// keepAlive refreshes the login every Hooks.KeepAlive until stop is closed,
// on its own goroutine so that a slow identity provider never delays a
// signal or the revocation. The first failure is sent on failed; done is
// closed when it has stopped.
func (r *runner) keepAlive(ctx context.Context, cl *llmapi.Client, stop <-chan struct{}) (done <-chan struct{}, failed <-chan error) {
	every := r.h.KeepAlive
	if every <= 0 {
		every = DefaultKeepAlive
	}
	d, f := make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(d)
		tick := time.NewTicker(every)
		defer tick.Stop()
		warned := false
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := cl.Refresh(ctx); err != nil && !warned {
					warned = true
					f <- err
				}
			}
		}
	}()
	return d, f
}

// revokeAndReport revokes k; a failure is always said on stderr (with the
// key's id and expiry, never the key), a success only with --verbose.
func (r *runner) revokeAndReport(ctx context.Context, cl *llmapi.Client, k keyscmd.Key, expires, since time.Time, what string) error {
	err := revoke(ctx, cl, k.ID)
	took := time.Since(since).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(r.stderr, "edgectl: could not revoke the run's API key (id %s, kid %s): %v; it stays valid until %s\n",
			session.Sanitize(k.ID, 64), session.Sanitize(k.KID, 16), err, expires.UTC().Format(time.RFC3339))
		return err
	}
	if r.fl.verbose {
		fmt.Fprintf(r.stderr, "edgectl: revoked the run's API key (kid %s) %s after the command ended%s\n",
			session.Sanitize(k.KID, 16), took, what)
	}
	return nil
}

// revoke revokes key id with a fresh access token, retrying transient
// failures (network, 5xx, an access token refused) within RevokeTimeout.
func revoke(ctx context.Context, cl *llmapi.Client, id string) error {
	ctx, cancel := context.WithTimeout(ctx, RevokeTimeout)
	defer cancel()
	var err error
	for attempt := range 4 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt*attempt) * 250 * time.Millisecond):
			case <-ctx.Done():
				return err
			}
		}
		if err = cl.Refresh(ctx); err != nil {
			if errors.Is(err, session.ErrSessionEnded) || errors.Is(err, session.ErrNotLoggedIn) {
				return err // no token to revoke with: the expiry is the backstop
			}
			continue
		}
		if err = keyscmd.Revoke(ctx, cl, id); err == nil {
			return nil
		}
		var ae *llmapi.APIError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != 401 {
			return err // a refusal that will not change
		}
	}
	return err
}

func (r *runner) environ() []string {
	if r.h.Environ != nil {
		return r.h.Environ()
	}
	return os.Environ()
}

// baseURL is the model API's base URL given to the child: --base-url, else
// the server's /v1 (the gateway routes /v1 to llm-api).
func (r *runner) baseURL(server string) (string, error) {
	if r.fl.baseURL == "" {
		return strings.TrimRight(server, "/") + "/v1", nil
	}
	u, err := deviceflow.CheckURL(r.fl.baseURL, r.fl.insecure)
	if err != nil {
		return "", fmt.Errorf("--base-url: %w", err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("--base-url: the URL has a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// childEnv is env without EDGEGUARD_API_KEY and without the variables the
// run sets, then those: the key or the base URL, by vars' kind.
func childEnv(env []string, vars map[string]string, key, base string) []string {
	out := make([]string, 0, len(env)+len(vars))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, set := vars[name]; set || name == session.EnvAPIKey {
			continue
		}
		out = append(out, kv)
	}
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		v := base
		if vars[n] == "key" {
			v = key
		}
		out = append(out, n+"="+v)
	}
	return out
}

// defaultName is run:<the command's base name>:<6 random hex digits>: named
// after the command, unique among concurrent runs (llm-api refuses a name
// an active key of the user already has).
func defaultName(cmd string) string {
	b := []byte(filepath.Base(cmd))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	return "run:" + string(b) + ":" + hex.EncodeToString(rnd[:])
}

func roleList(roles []string) string {
	if len(roles) == 0 {
		return "none"
	}
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = session.Sanitize(r, 64)
	}
	return strings.Join(out, ",")
}

// pending returns a signal already received, if any.
func pending(c <-chan os.Signal) (os.Signal, bool) {
	select {
	case s := <-c:
		return s, true
	default:
		return nil, false
	}
}

// unwrapPath drops exec's "fork/exec <path>:" prefix (the path is said once).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Package cmd is edgectl's command tree and its entry point, Run, which
// returns the exit code instead of exiting so that tests can run commands in
// process. Each command lives in its own package (jwscmd, tokencmd,
// logincmd, keyscmd, doctorcmd, runcmd, usagecmd, budgetscmd); this one only wires them and turns
// errors into exit codes and short messages.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/edgeguard/edgeguard/cli/internal/budgetscmd"
	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/cli/internal/doctorcmd"
	"github.com/edgeguard/edgeguard/cli/internal/jwscmd"
	"github.com/edgeguard/edgeguard/cli/internal/keyscmd"
	"github.com/edgeguard/edgeguard/cli/internal/logincmd"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/runcmd"
	"github.com/edgeguard/edgeguard/cli/internal/session"
	"github.com/edgeguard/edgeguard/cli/internal/tokencmd"
	"github.com/edgeguard/edgeguard/cli/internal/usagecmd"
)

// Version is edgectl's version, set at build time with
// -ldflags "-X github.com/edgeguard/edgeguard/cli/internal/cmd.Version=v1.2.3";
// when unset, the module version from the build info (or "dev").
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Env is what a run of edgectl talks to. The zero values of the optional
// fields are the real machine.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Now            func() time.Time // nil: time.Now

	// ConfigDir is edgectl's config directory ("": credstore.DefaultDir,
	// <os.UserConfigDir()>/edgeguard).
	ConfigDir string
	// Keyring is the OS keyring (nil: the system's, when usable).
	Keyring credstore.Keyring
	// HTTPClient makes every request to Keycloak and llm-api (nil: a
	// client with a 15 s timeout that follows no redirects).
	HTTPClient *http.Client
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
	// Sleep waits between device-flow polls (nil: a timer).
	Sleep func(ctx context.Context, d time.Duration) error
	// IsTerminal says whether w is a terminal (nil: golang.org/x/term on
	// *os.File).
	IsTerminal func(w io.Writer) bool
	// RunHooks is what "edgectl run" takes from the machine: signals, the
	// child's environment (zero: the real ones).
	RunHooks runcmd.Hooks
}

// session builds the session environment of the credential commands.
func (e Env) session() (*session.Env, error) {
	getenv := e.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	dir := e.ConfigDir
	if dir == "" {
		d, err := credstore.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	mode, err := credstore.ParseMode(getenv(session.EnvKeyring))
	if err != nil {
		return nil, err
	}
	store, err := credstore.New(credstore.Options{Dir: dir, Mode: mode, Keyring: e.Keyring})
	if err != nil {
		return nil, err
	}
	return &session.Env{
		Store: store, HTTP: e.HTTPClient, Now: e.Now, Sleep: e.Sleep, Getenv: getenv,
		UserAgent: "edgectl/" + version(),
	}, nil
}

func (e Env) isTerminal(w io.Writer) bool {
	if e.IsTerminal != nil {
		return e.IsTerminal(w)
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Run runs edgectl with args (without the program name) and returns the exit
// code: 0 valid (or done), 1 invalid (or failed), 2 usage error.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}.Run(context.Background(), args)
}

// Run runs edgectl in e.
func (e Env) Run(ctx context.Context, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	code := outcome.Code(err)
	if msg, ok := outcome.ExitMessage(err); ok {
		fmt.Fprintf(e.Stderr, "edgectl: %s\n", redact(msg, args))
		return code
	}
	var exit *outcome.Exit
	if errors.As(err, &exit) {
		return code // the child's code: it said what it had to
	}
	if outcome.IsFailure(err) {
		fmt.Fprintf(e.Stderr, "edgectl: %s\n", redact(err.Error(), args))
	}
	if code == outcome.Usage {
		fmt.Fprintf(e.Stderr, "edgectl: %s\n", redact(err.Error(), args))
		if c == nil {
			c = root
		}
		fmt.Fprintf(e.Stderr, "Run '%s --help' for usage.\n", c.CommandPath())
	}
	return code
}

func newRoot(e Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "edgectl",
		Short: "edgectl — edgeguard's command line: log in, manage API keys, check tokens as the edge does",
		Long: `edgectl logs in to an edgeguard deployment with the OAuth 2.0 device flow,
keeps the session encrypted on disk, manages API keys, and checks credentials
the way the edgeguard edge does.

Exit 0 when the command (or check) succeeds, 1 when it ran and failed, 2 on a
usage error. Checks print one JSON line on stdout. Give tokens as "-" (stdin)
rather than as an argument: arguments end up in shell history and process
listings. Only "edgectl token" prints a token.`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return errors.New("missing command")
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetVersionTemplate("edgectl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return err })
	opts := session.Options{Open: e.session, IsTerminal: e.isTerminal}
	root.AddCommand(jwscmd.New(), tokencmd.New(tokencmd.Options{Now: e.Now, Session: opts}))
	root.AddCommand(logincmd.New(opts)...)
	root.AddCommand(keyscmd.New(opts), doctorcmd.New(opts), runcmd.New(opts, e.RunHooks))
	root.AddCommand(usagecmd.New(opts), budgetscmd.New(opts))
	return root
}

// redact removes from an error message every argument that could be a
// token (cobra and pflag quote offending arguments: "unknown command
// \"eyJ...\"", "invalid argument \"eyJ...\" for --leeway").
func redact(msg string, args []string) string {
	for _, a := range args {
		for _, part := range []string{a, a[strings.IndexByte(a, '=')+1:]} {
			if mayBeToken(part) {
				msg = strings.ReplaceAll(msg, part, "[redacted]")
			}
		}
	}
	return msg
}

// mayBeToken is true for anything shaped like a JWT or an API key: at least
// two dots and no slash (paths and URLs have slashes, tokens never), an sk_
// prefix, or a long argument.
func mayBeToken(s string) bool {
	if len(s) < 8 {
		return false
	}
	return len(s) > 200 || strings.HasPrefix(s, "sk_") ||
		(strings.Count(s, ".") >= 2 && !strings.Contains(s, "/"))
}

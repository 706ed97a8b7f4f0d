// Package cmd is edgectl's command tree and its entry point, Run, which
// returns the exit code instead of exiting so that tests can run commands in
// process. Each command lives in its own package (jwscmd, tokencmd, and later
// login, whoami, keys, doctor); this one only wires them and turns errors
// into exit codes and short messages.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/jwscmd"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/tokencmd"
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

// Env is what a run of edgectl talks to.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Now            func() time.Time // nil: time.Now
}

// Run runs edgectl with args (without the program name) and returns the exit
// code: 0 valid, 1 invalid, 2 usage error.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}.Run(context.Background(), args)
}

// Run runs edgectl in e.
func (e Env) Run(ctx context.Context, args []string) int {
	root := newRoot(e)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	code := outcome.Code(err)
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
		Short: "edgectl — edgeguard's command line: check tokens and keys as the edge does",
		Long: `edgectl checks credentials the way the edgeguard edge does.

Commands print one JSON line on stdout and exit 0 when the check passes,
1 when it fails, 2 on a usage error. Give tokens as "-" (stdin) rather than as
an argument: arguments end up in shell history and process listings.`,
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
	root.AddCommand(jwscmd.New(), tokencmd.New(tokencmd.Options{Now: e.Now}))
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

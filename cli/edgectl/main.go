// Command edgectl is edgeguard's command line. See cli/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeguard/edgeguard/cli/internal/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cmd.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

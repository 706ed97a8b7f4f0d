//go:build !unix

package runcmd

import "os"

// forwarded: outside Unix, the console delivers Ctrl-C to the child itself;
// edgectl only keeps it from ending the run before the key is revoked.
var forwarded = []os.Signal{os.Interrupt}

func (r *runner) forward(*os.Process, os.Signal) {}

func signum(os.Signal) int { return 2 }

func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }

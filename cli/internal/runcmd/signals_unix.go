//go:build unix

package runcmd

import (
	"os"
	"syscall"
	"unsafe"
)

// forwarded are the signals edgectl catches while a run lasts and passes on
// to the child. SIGTSTP/SIGCONT (job control) and SIGWINCH reach the child
// from the terminal directly (it is in edgectl's process group).
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// forward sends s to the child, except a SIGINT or SIGQUIT that the
// terminal sent: it sends those to its whole foreground process group, the
// child included, and a second copy would look like a second Ctrl-C (which
// many programs take as "quit now, skip the clean-up").
func (r *runner) forward(p *os.Process, s os.Signal) {
	if (s == syscall.SIGINT || s == syscall.SIGQUIT) && r.foreground() {
		return
	}
	_ = p.Signal(s)
}

// foreground reports whether edgectl's process group is the foreground group
// of the terminal on its stdin, stdout or stderr — the group the terminal
// sends Ctrl-C and Ctrl-\ to.
func (r *runner) foreground() bool {
	for _, s := range []any{r.stdin, r.stdout, r.stderr} {
		f, ok := s.(*os.File)
		if !ok {
			continue
		}
		var pgrp int32
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGPGRP), uintptr(unsafe.Pointer(&pgrp))); errno != 0 {
			continue // not a terminal
		}
		return int(pgrp) == syscall.Getpgrp()
	}
	return false
}

// signum is s's number (for the exit code 128+N).
func signum(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return 1
}

// exitCode is the child's exit code, or 128+N when signal N ended it (as
// shells report it).
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

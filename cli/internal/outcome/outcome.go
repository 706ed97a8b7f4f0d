// Package outcome is how an edgectl command ends: its exit code and, for a
// verdict, the one JSON line it prints on stdout.
//
// Exit codes are part of edgectl's interface (scripts branch on them):
// 0 the check (or operation) passed, 1 it ran and failed (a verdict's JSON
// line says why, or a Failure's message on stderr), 2 it could not run (bad
// flags, no token, unreadable or unusable key file, a failure writing the
// result). It is not a logging package: commands
// never print diagnostics on stdout.
package outcome

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Exit codes.
const (
	OK      = 0 // valid
	Invalid = 1 // the check ran and rejected the input
	Usage   = 2 // the check could not run
)

// ErrInvalid is returned by a command after it printed a negative verdict:
// the process exits 1 and prints nothing more.
var ErrInvalid = errors.New("invalid")

// Failure is an operation that ran and failed (not logged in, the server
// refused, the login was denied): exit 1, and its message on stderr.
type Failure struct{ Err error }

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Fail wraps err as a Failure (nil stays nil).
func Fail(err error) error {
	if err == nil {
		return nil
	}
	return &Failure{Err: err}
}

// Failf is Fail(fmt.Errorf(format, args...)).
func Failf(format string, args ...any) error { return &Failure{Err: fmt.Errorf(format, args...)} }

// IsFailure reports whether err is a Failure (its message is for stderr).
func IsFailure(err error) bool {
	var f *Failure
	return errors.As(err, &f)
}

// Exit ends a command with a code of its own: "edgectl run" exits with its
// child's code, or with 125-127 when it could not run it (as env(1) does).
// Err, when not nil, is a message for stderr. A Code outside 1..255 exits 1.
type Exit struct {
	Code int
	Err  error
}

func (e *Exit) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}
func (e *Exit) Unwrap() error { return e.Err }

// ExitMessage returns err's message for stderr when err is an *Exit that
// carries one.
func ExitMessage(err error) (string, bool) {
	var e *Exit
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error(), true
	}
	return "", false
}

// Code maps the error a command returned to the process exit code: nil 0,
// ErrInvalid and Failure 1, an *Exit its code, anything else is a usage
// error (2): an unexpected failure never exits 0.
func Code(err error) int {
	var exit *Exit
	switch {
	case err == nil:
		return OK
	case errors.As(err, &exit):
		if exit.Code <= OK || exit.Code > 255 {
			return Invalid // an error never exits 0; exit codes are one byte
		}
		return exit.Code
	case errors.Is(err, ErrInvalid), IsFailure(err):
		return Invalid
	default:
		return Usage
	}
}

// WriteLine writes v as one line of compact JSON.
func WriteLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// Verdict prints v and returns the error that gives the exit code for it:
// nil when valid, ErrInvalid otherwise (or the write failure).
func Verdict(w io.Writer, valid bool, v any) error {
	if err := WriteLine(w, v); err != nil {
		return err
	}
	if !valid {
		return ErrInvalid
	}
	return nil
}

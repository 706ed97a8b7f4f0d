// Package outcome is how an edgectl command ends: its exit code and, for a
// verdict, the one JSON line it prints on stdout.
//
// Exit codes are part of edgectl's interface (scripts branch on them):
// 0 the check passed, 1 the check ran and failed (the JSON line says why),
// 2 the check could not run (bad flags, no token, unreadable or unusable key
// file, a failure writing the result). It is not a logging package: commands
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

// Code maps the error a command returned to the process exit code. Any error
// other than ErrInvalid is a usage error: an unexpected failure never exits 0.
func Code(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrInvalid):
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

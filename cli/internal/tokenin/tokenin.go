// Package tokenin reads the token an edgectl command checks, from its
// argument or from stdin ("-"), bounded and normalised the same way for every
// command.
//
// Normalisation is deliberately small: surrounding whitespace (a trailing
// newline from echo or a file) is trimmed once, and one optional
// "Bearer " prefix (scheme case-insensitive, followed by one or more spaces,
// as in RFC 6750's Authorization header) is removed. Nothing else is
// touched: whitespace, padding or NUL bytes inside the token stay and make it
// malformed. It is not a parser: whether the result is a JWS is for jwtauth
// to say.
package tokenin

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxBytes bounds what is read: a larger input is rejected as
// token_too_large without being read further.
const MaxBytes = 1 << 20

// Stdin is the argument that means "read the token from stdin".
const Stdin = "-"

// Sentinel errors of Read.
var (
	// ErrNoToken: the input is empty (or only whitespace). A usage error.
	ErrNoToken = errors.New("no token given")
	// ErrTooLarge: the input exceeds MaxBytes. A verdict (token_too_large).
	ErrTooLarge = errors.New("token exceeds 1 MiB")
)

// Read returns the token given as arg, or read from stdin when arg is "-".
func Read(arg string, stdin io.Reader) (string, error) {
	if arg != Stdin {
		if len(arg) > MaxBytes {
			return "", ErrTooLarge
		}
		return Normalize(arg)
	}
	if stdin == nil {
		return "", ErrNoToken
	}
	b, err := io.ReadAll(io.LimitReader(stdin, MaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("read token from stdin: %w", err)
	}
	if len(b) > MaxBytes {
		return "", ErrTooLarge
	}
	return Normalize(string(b))
}

const bearer = "bearer "

// Normalize trims surrounding whitespace once and removes one optional
// "Bearer " prefix.
func Normalize(raw string) (string, error) {
	t := strings.TrimSpace(raw)
	if len(t) > len(bearer) && strings.EqualFold(t[:len(bearer)], bearer) {
		t = strings.TrimLeft(t[len(bearer):], " ")
	}
	if t == "" {
		return "", ErrNoToken
	}
	return t, nil
}

// Package envconf reads a service's configuration from the environment the
// way every edgeguard service does: plain values with defaults and bounds,
// lists, booleans, and secrets from files (NAME_FILE, what Kubernetes and
// compose mount). In strict mode (the default outside `make dev`) an inline
// secret, a missing required secret, a short one or a placeholder value
// ("changeme", "secret", one repeated character…) is refused with one error
// naming the variable — never the value.
//
// It reads; it does not connect to anything, and it never logs.
package envconf

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Secret is a secret value that never prints (fmt, %#v, JSON).
type Secret []byte

func (s Secret) String() string { return "[secret]" }

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return "envconf.Secret([secret])" }

// MarshalJSON never encodes the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// placeholders mark a secret nobody generated.
var placeholders = []string{"changeme", "change-me", "change_me", "secret", "password", "default", "example",
	"admin", "postgres", "test", "xxx", "todo", "replace-me", "replaceme", "insecure"}

// IsPlaceholder reports whether v is a value from templates and docs rather
// than a generated secret.
func IsPlaceholder(v []byte) bool {
	s := strings.ToLower(string(v))
	for _, p := range placeholders {
		if s == p {
			return true
		}
	}
	if strings.Contains(s, "changeme") || strings.Contains(s, "change-me") || strings.Contains(s, "change_me") {
		return true
	}
	return len(s) > 0 && strings.Count(s, s[:1]) == len(s) // one repeated character
}

// Loader reads variables through injectable getenv and readFile (os.Getenv
// and os.ReadFile in production, maps in tests).
type Loader struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	// Strict refuses inline, short and placeholder secrets.
	Strict bool
}

// FromOS is a Loader on the process environment and file system.
func FromOS(strict bool) *Loader {
	return &Loader{Getenv: os.Getenv, ReadFile: os.ReadFile, Strict: strict}
}

// Str returns the trimmed value of name, or def.
func (l *Loader) Str(name, def string) string {
	if v := strings.TrimSpace(l.Getenv(name)); v != "" {
		return v
	}
	return def
}

// List returns the comma-separated values of name (trimmed, empty ones
// dropped), or def when there are none.
func (l *Loader) List(name string, def []string) []string {
	var out []string
	for v := range strings.SplitSeq(l.Getenv(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// Bool parses name (strconv.ParseBool), or returns def when unset.
func (l *Loader) Bool(name string, def bool) (bool, error) {
	v := strings.TrimSpace(l.Getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", name, v)
	}
	return b, nil
}

// Int parses name within lo..hi, or returns def when unset.
func (l *Loader) Int(name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(l.Getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: %q is not an integer in %d..%d", name, v, lo, hi)
	}
	return n, nil
}

// Duration parses name (a Go duration) within lo..hi, or returns def.
func (l *Loader) Duration(name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(l.Getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s: %q is not a duration in %s..%s", name, v, lo, hi)
	}
	return d, nil
}

// SecretOpts qualifies one secret.
type SecretOpts struct {
	// MinLen is the shortest acceptable value (bytes, after trimming).
	MinLen int
	// Required: missing is an error (in every mode).
	Required bool
	// InlineOK accepts NAME inline even in strict mode and skips the
	// placeholder check (configuration that may carry a password, such as a
	// managed database's URL).
	InlineOK bool
	// AlwaysMinLen enforces MinLen outside strict mode too (a short value is
	// unusable, e.g. an HMAC pepper).
	AlwaysMinLen bool
}

// Secret reads NAME_FILE (surrounding whitespace trimmed), or NAME inline
// outside strict mode. Errors name the variable (and the file path), never
// the value. A missing optional secret is (nil, nil).
func (l *Loader) Secret(name string, o SecretOpts) (Secret, error) {
	fileVar := name + "_FILE"
	path := strings.TrimSpace(l.Getenv(fileVar))
	inline := l.Getenv(name)
	var v []byte
	switch {
	case path != "":
		b, err := l.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read %s", fileVar, path)
		}
		if v = bytes.TrimSpace(b); len(v) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", fileVar, path)
		}
	case inline != "":
		if l.Strict && !o.InlineOK {
			return nil, fmt.Errorf("%s: set %s (a file); an inline value is accepted only with STRICT=false", name, fileVar)
		}
		v = []byte(strings.TrimSpace(inline))
	default:
		if o.Required {
			return nil, fmt.Errorf("%s: required", fileVar)
		}
		return nil, nil
	}
	if len(v) < o.MinLen && (l.Strict || o.AlwaysMinLen) {
		return nil, fmt.Errorf("%s: %d bytes, at least %d required", fileVar, len(v), o.MinLen)
	}
	if l.Strict && !o.InlineOK && IsPlaceholder(v) {
		return nil, fmt.Errorf("%s: a placeholder or default value; generate a random secret", fileVar)
	}
	return Secret(v), nil
}

// Package envconf reads a service's configuration from the environment the
// way every edgeguard service does: plain values with defaults and bounds,
// lists, booleans, and secrets through pkg/secrets (NAME_FILE, what
// Kubernetes and compose mount; NAME inline; HashiCorp Vault — in the order
// SECRETS_SOURCES gives). In strict mode (the default outside `make dev`) an
// inline secret, a missing required secret, a short one or a placeholder
// value ("changeme", a value the templates and docs show, "${VAR}", one
// repeated character…) is refused with an error naming the variable —
// never the value. Loaders collect every fault of a start (Faults) so that
// one refused start names them all.
//
// It reads; it does not connect to anything itself (a Vault backend, when
// configured, does), and it never logs (the Resolver keeps its access
// records for the service's logger).
package envconf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/secrets"
)

// Secret is a secret value that never prints (fmt, %#v, JSON).
type Secret []byte

func (s Secret) String() string { return "[secret]" }

// GoString keeps %#v from printing the bytes.
func (s Secret) GoString() string { return "envconf.Secret([secret])" }

// MarshalJSON never encodes the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// placeholders mark a secret nobody generated (documented ones are in
// placeholders_docs.go, kept in step with the docs by a test).
var placeholders = []string{"changeme", "change-me", "change_me", "secret", "password", "default", "example",
	"admin", "postgres", "test", "xxx", "todo", "replace-me", "replaceme", "insecure"}

// IsPlaceholder reports whether v is a value from templates and docs rather
// than a generated secret: a known default, a value shown in
// .env.template, config/secrets.env.example or a README (placeholders_docs.go),
// a template expression left unexpanded (${VAR}, {{ .x }}, <your-key>), an
// ellipsis, or one repeated character.
func IsPlaceholder(v []byte) bool {
	s := strings.ToLower(strings.TrimSpace(string(v)))
	for _, p := range placeholders {
		if s == p {
			return true
		}
	}
	for _, p := range documentedPlaceholders {
		if s == strings.ToLower(p) {
			return true
		}
	}
	if strings.Contains(s, "changeme") || strings.Contains(s, "change-me") || strings.Contains(s, "change_me") ||
		strings.Contains(s, "…") || strings.Contains(s, "...") ||
		strings.Contains(s, "${") || strings.Contains(s, "{{") ||
		strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		return true
	}
	return len(s) > 0 && strings.Count(s, s[:1]) == len(s) // one repeated character
}

// DocumentedPlaceholders returns the secret values shown in the templates
// and docs (each refused in strict mode), for the services' refusal tables.
func DocumentedPlaceholders() []string {
	return append([]string{"${INTERNAL_TOKEN}", "…"}, documentedPlaceholders...)
}

// Loader reads variables through injectable getenv and readFile (os.Getenv
// and os.ReadFile in production, maps in tests).
type Loader struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	// Strict refuses inline, short and placeholder secrets.
	Strict bool
	// Backends are the secret backends this binary can use besides file
	// and env, by their SECRETS_SOURCES name (e.g. "vault": vault.FromEnv,
	// package pkg/secrets/vault). Service builds Secrets from them.
	Backends map[string]func(*Loader) (secrets.Backend, error)
	// Secrets resolves every secret (set by Service from SECRETS_SOURCES;
	// nil: file, then env).
	Secrets *secrets.Resolver
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
	// AbsentOK lets NAME_FILE name a file that does not exist (or is
	// empty): the optional secret is unset until the file appears. For the
	// previous values of a rotation (INTERNAL_TOKEN_PREVIOUS_FILE), whose
	// path stays configured while the file comes and goes.
	AbsentOK bool
}

// Secret reads the secret NAME through the Loader's Resolver: by default
// NAME_FILE (surrounding whitespace trimmed), or NAME inline outside strict
// mode; with SECRETS_SOURCES, from the backends it names in order. Errors
// name the variable (and the file path), never the value. A missing
// optional secret is (nil, nil).
//
// With a backend unavailable (Vault down) and no later backend holding the
// secret, a required secret is an error (fail closed) and an optional one is
// unset: the file fallback covers what a service needs to start.
func (l *Loader) Secret(name string, o SecretOpts) (Secret, error) {
	v, _, err := l.secret(context.Background(), name, o)
	if !o.Required && errors.Is(err, secrets.ErrUnavailable) {
		return nil, nil
	}
	return v, err
}

// SecretValue is Secret as a secrets.Value that secrets.Watch keeps
// current (a rotated file, a new Vault version), with the same checks at
// every refresh: a refused new value keeps the current one. An optional
// secret may be unset (Get returns nil).
func (l *Loader) SecretValue(name string, o SecretOpts) (*secrets.Value, error) {
	first := true
	return secrets.NewValue(context.Background(), name, !o.Required, func(ctx context.Context) ([]byte, string, error) {
		v, from, err := l.secret(ctx, name, o)
		if first && !o.Required && errors.Is(err, secrets.ErrUnavailable) {
			v, from, err = nil, "", nil // start without it; a refresh keeps trying
		}
		first = false
		return v, from, err
	})
}

func (l *Loader) resolver() *secrets.Resolver {
	if l.Secrets == nil {
		l.Secrets = secrets.NewResolver(secrets.File{Getenv: l.Getenv, ReadFile: l.ReadFile}, secrets.Env{Getenv: l.Getenv})
	}
	return l.Secrets
}

func (l *Loader) secret(ctx context.Context, name string, o SecretOpts) (Secret, string, error) {
	fileVar := name + "_FILE"
	v, from, err := l.resolver().Lookup(ctx, name)
	switch {
	case errors.Is(err, secrets.ErrNotFound):
		if o.Required {
			return nil, "", fmt.Errorf("%s: required (%s)", fileVar, strings.TrimPrefix(err.Error(), secrets.ErrNotFound.Error()+": "))
		}
		return nil, "", nil
	case errors.Is(err, secrets.ErrUnavailable):
		return nil, "", fmt.Errorf("%s: %w", name, err)
	case err != nil && o.AbsentOK && !o.Required && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, secrets.ErrEmpty)):
		return nil, "", nil
	case err != nil:
		return nil, from, err
	}
	if from == "env" && l.Strict && !o.InlineOK {
		return nil, from, fmt.Errorf("%s: set %s (a file); an inline value is accepted only with STRICT=false", name, fileVar)
	}
	label := fileVar // as before backends: file and env name NAME_FILE
	if from != "file" && from != "env" {
		label = name + " (" + from + ")"
	}
	if l.Strict && !o.InlineOK && IsPlaceholder(v) {
		return nil, from, fmt.Errorf("%s: a placeholder or default value; generate a random secret", label)
	}
	if len(v) < o.MinLen && (l.Strict || o.AlwaysMinLen) {
		return nil, from, fmt.Errorf("%s: %d bytes, at least %d required", label, len(v), o.MinLen)
	}
	return Secret(v), from, nil
}

// Package secrets finds a service's secrets in an ordered list of backends
// (SECRETS_SOURCES, e.g. "vault,file"): a mounted file (NAME_FILE), an inline
// environment variable (NAME, development only: pkg/envconf refuses it in
// strict mode) or HashiCorp Vault's KV v2 (sub-package vault, linked only by
// the binaries that import it). The first backend that holds a secret gives
// it; a backend that is unreachable is skipped so the next one (typically
// the file) serves as the fallback, and a secret that no backend holds is an
// error that says where it was looked for.
//
// Every lookup leaves an access record (secret name, backend, outcome) at
// debug level — never the value, its length or a hash of it.
//
// A Value is a secret read as a current value that a Watch loop refreshes
// (atomic swap), for consumers that take a rotation without a restart.
//
// It does not check what a value looks like (length, placeholders): that is
// pkg/envconf's job, which reads every secret through a Resolver.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// Sentinel errors of a Backend's Lookup, matched with errors.Is.
var (
	// ErrNotFound: this backend does not hold the secret; the next one is
	// asked.
	ErrNotFound = errors.New("secret not found")
	// ErrUnavailable: this backend cannot be asked now (unreachable, sealed,
	// timed out); the next one is asked.
	ErrUnavailable = errors.New("secret backend unavailable")
	// ErrEmpty: the backend holds the secret but it is empty (an empty file).
	ErrEmpty = errors.New("secret is empty")
)

// Backend is one place secrets come from. Name is its name in
// SECRETS_SOURCES and in access records ("file", "env", "vault").
//
// Lookup returns the value of the secret named by its environment variable
// (API_KEY_PEPPER), an error wrapping ErrNotFound or ErrUnavailable, or any
// other error, which stops the search (a refusal: a named file that cannot
// be read, a permission denied). Errors start with the variable's name and
// never carry a value.
type Backend interface {
	Name() string
	Lookup(ctx context.Context, name string) ([]byte, error)
	// Where says where name would be found, for the error of a secret that
	// no backend holds ("no API_KEY_PEPPER_FILE set").
	Where(name string) string
}

// Outcomes of an access record.
const (
	OutcomeFound       = "found"
	OutcomeNotFound    = "not_found"
	OutcomeUnavailable = "unavailable"
	OutcomeError       = "error"
)

// Record is one backend asked for one secret. It holds no value.
type Record struct {
	Secret  string
	Backend string
	Outcome string
}

// MarshalZerologObject logs the record's three fields.
func (r Record) MarshalZerologObject(e *zerolog.Event) {
	e.Str("secret", r.Secret).Str("backend", r.Backend).Str("outcome", r.Outcome)
}

// maxPending bounds the records kept before a logger is attached.
const maxPending = 512

// Resolver asks its backends in order. Safe for concurrent use.
type Resolver struct {
	backends []Backend

	mu      sync.Mutex
	log     *zerolog.Logger
	pending []Record
}

// NewResolver returns a Resolver over backends, asked in the given order.
func NewResolver(backends ...Backend) *Resolver {
	return &Resolver{backends: backends}
}

// Backends names the backends in order.
func (r *Resolver) Backends() []string {
	out := make([]string, len(r.backends))
	for i, b := range r.backends {
		out[i] = b.Name()
	}
	return out
}

// Attach sends the access records to log at debug level: the ones kept
// since the Resolver was built (configuration is read before the logger
// exists) and every later one.
func (r *Resolver) Attach(log zerolog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := log.With().Str("component", "secrets").Logger()
	r.log = &l
	for _, rec := range r.pending {
		l.Debug().EmbedObject(rec).Msg("secret access")
	}
	r.pending = nil
}

func (r *Resolver) record(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log != nil {
		r.log.Debug().EmbedObject(rec).Msg("secret access")
		return
	}
	if len(r.pending) < maxPending {
		r.pending = append(r.pending, rec)
	}
}

// Lookup returns the value of name from the first backend that holds it,
// and that backend's name. When none does it returns an error wrapping
// ErrNotFound, or ErrUnavailable when a backend that could not be asked
// might have held it; the message lists where it was looked for. Any other
// backend error is returned as is.
func (r *Resolver) Lookup(ctx context.Context, name string) ([]byte, string, error) {
	var unavailable []string
	for _, b := range r.backends {
		v, err := b.Lookup(ctx, name)
		switch {
		case err == nil:
			r.record(Record{name, b.Name(), OutcomeFound})
			return v, b.Name(), nil
		case errors.Is(err, ErrNotFound):
			r.record(Record{name, b.Name(), OutcomeNotFound})
		case errors.Is(err, ErrUnavailable):
			r.record(Record{name, b.Name(), OutcomeUnavailable})
			unavailable = append(unavailable, err.Error())
		default:
			r.record(Record{name, b.Name(), OutcomeError})
			return nil, b.Name(), err
		}
	}
	where := make([]string, 0, len(r.backends))
	for _, b := range r.backends {
		where = append(where, b.Where(name))
	}
	if len(unavailable) > 0 {
		return nil, "", fmt.Errorf("%w: %s; %s", ErrUnavailable, strings.Join(unavailable, "; "), strings.Join(where, ", "))
	}
	return nil, "", fmt.Errorf("%w: %s", ErrNotFound, strings.Join(where, ", "))
}

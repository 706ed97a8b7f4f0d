package secrets

import (
	"context"
	"crypto/subtle"
	"errors"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Loader reads one secret and checks it (pkg/envconf's Loader.Secret with the
// secret's options): the value (nil when an optional secret is unset), the
// backend it came from, or an error naming the variable.
type Loader func(ctx context.Context) (value []byte, backend string, err error)

// Value is a secret as a current value: Get is one atomic load, Refresh
// reads it again and swaps it in when it changed. A refresh that fails (an
// unreadable file, a value the checks refuse, a backend down) keeps the
// current value; for an Optional value, a file that was removed or emptied
// clears it (the end of a rotation's grace window). Safe for concurrent use.
type Value struct {
	name     string
	load     Loader
	optional bool

	cur atomic.Pointer[[]byte]
	mu  sync.Mutex // serialises Refresh
}

// NewValue reads the secret once with load (an error is returned as is: a
// service refuses to start) and returns it as a Value that Refresh and
// Watch keep current. name is the variable, for logs.
func NewValue(ctx context.Context, name string, optional bool, load Loader) (*Value, error) {
	b, _, err := load(ctx)
	if err != nil {
		return nil, err
	}
	v := &Value{name: name, load: load, optional: optional}
	v.set(b)
	return v, nil
}

// Static is a Value that never changes (tests, callers without a source).
// A nil or empty b is an unset Value.
func Static(b []byte) *Value {
	v := &Value{}
	v.set(b)
	return v
}

func (v *Value) set(b []byte) {
	if len(b) == 0 {
		v.cur.Store(nil)
		return
	}
	c := append([]byte(nil), b...)
	v.cur.Store(&c)
}

// Get returns the current value (nil when unset). The caller must not
// modify it. A nil *Value is unset.
func (v *Value) Get() []byte {
	if v == nil {
		return nil
	}
	if p := v.cur.Load(); p != nil {
		return *p
	}
	return nil
}

// Name is the variable the value was read from.
func (v *Value) Name() string { return v.name }

// String never shows the value.
func (v *Value) String() string { return "[secret]" }

// GoString never shows the value.
func (v *Value) GoString() string { return "secrets.Value([secret])" }

// MarshalJSON never encodes the value.
func (v *Value) MarshalJSON() ([]byte, error) { return []byte(`"[secret]"`), nil }

// Refresh reads the secret again. It reports whether the value changed and
// the backend it came from; on error the current value stays.
func (v *Value) Refresh(ctx context.Context) (changed bool, backend string, err error) {
	if v.load == nil {
		return false, "", nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	b, backend, err := v.load(ctx)
	if err != nil {
		if !v.optional || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrEmpty)) {
			return false, backend, err
		}
		b = nil // an optional file removed or emptied: unset
	}
	old := v.Get()
	if len(old) == len(b) && subtle.ConstantTimeCompare(old, b) == 1 {
		return false, backend, nil
	}
	v.set(b)
	return true, backend, nil
}

// Watch refreshes vs every interval until ctx ends. A change is logged at
// info ("secret rotated", the variable and the backend), a failed refresh
// at warn (its error names the variable, never a value) — each failure once
// until the next success, not at every tick. interval <= 0 returns at once.
func Watch(ctx context.Context, interval time.Duration, log zerolog.Logger, vs ...*Value) {
	if interval <= 0 || len(vs) == 0 {
		return
	}
	failing := make([]bool, len(vs))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, v := range vs {
			if v == nil {
				continue
			}
			changed, backend, err := v.Refresh(ctx)
			switch {
			case err != nil:
				if !failing[i] {
					log.Warn().Str("secret", v.name).Err(err).Msg("secret refresh failed: keeping the current value")
				}
				failing[i] = true
				continue
			case changed && v.Get() == nil:
				log.Info().Str("secret", v.name).Msg("secret removed: previous value no longer accepted")
			case changed:
				log.Info().Str("secret", v.name).Str("backend", backend).Msg("secret rotated")
			}
			failing[i] = false
		}
	}
}

package credstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/zalando/go-keyring"
)

// Keyring is where data keys live when an OS keyring is available (the
// secret service on Linux, the Keychain on macOS, the Credential Manager on
// Windows). Get answers ErrKeyNotFound for a missing item.
type Keyring interface {
	Get(service, user string) (string, error)
	Set(service, user, secret string) error
	Delete(service, user string) error
}

// ErrKeyNotFound is a Keyring's answer for a missing item.
var ErrKeyNotFound = errors.New("no such keyring item")

// ErrKeyringUnavailable: no usable OS keyring (the reason is wrapped).
var ErrKeyringUnavailable = errors.New("OS keyring unavailable")

// keyringTimeout bounds each keyring call: a secret service that hangs (a
// locked collection waiting for a prompt nobody answers) must not hang
// edgectl.
const keyringTimeout = 5 * time.Second

// SystemKeyring returns the OS keyring, or ErrKeyringUnavailable with the
// reason, quickly: on Linux without a D-Bus session bus it does not even try
// (godbus would otherwise autolaunch one); otherwise it probes with a read
// of a missing item, bounded by a timeout.
func SystemKeyring() (Keyring, error) {
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
			rt := os.Getenv("XDG_RUNTIME_DIR")
			if rt == "" {
				return nil, fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR unset)", ErrKeyringUnavailable)
			}
			if _, err := os.Stat(filepath.Join(rt, "bus")); err != nil {
				return nil, fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset, no %s)", ErrKeyringUnavailable, filepath.Join(rt, "bus"))
			}
		}
	}
	k := systemKeyring{}
	if _, err := k.Get(keyringService, "probe"); err != nil && !errors.Is(err, ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %v", ErrKeyringUnavailable, err)
	}
	return k, nil
}

type systemKeyring struct{}

var _ Keyring = systemKeyring{}

func (systemKeyring) Get(service, user string) (string, error) {
	var v string
	err := bounded(func() (err error) { v, err = keyring.Get(service, user); return err })
	return v, err
}

func (systemKeyring) Set(service, user, secret string) error {
	return bounded(func() error { return keyring.Set(service, user, secret) })
}

func (systemKeyring) Delete(service, user string) error {
	return bounded(func() error { return keyring.Delete(service, user) })
}

// bounded runs f with keyringTimeout and maps go-keyring's not-found error.
// A call that times out keeps running in its goroutine until the process
// ends (edgectl is short-lived).
func bounded(f func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), keyringTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if errors.Is(err, keyring.ErrNotFound) {
			return ErrKeyNotFound
		}
		if err != nil {
			// go-keyring's errors carry no secret, but keep them short.
			return fmt.Errorf("keyring: %s", trunc(err.Error(), 200))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("keyring: no answer within %s", keyringTimeout)
	}
}

// MemoryKeyring is an in-memory Keyring (tests, and a stand-in where no OS
// keyring exists but one is wanted for the process).
type MemoryKeyring struct {
	mu    sync.Mutex
	items map[[2]string]string
	// Fail, when set, is returned by every call (a broken keyring).
	Fail error
}

var _ Keyring = (*MemoryKeyring)(nil)

// Get implements Keyring.
func (m *MemoryKeyring) Get(service, user string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return "", m.Fail
	}
	v, ok := m.items[[2]string{service, user}]
	if !ok {
		return "", ErrKeyNotFound
	}
	return v, nil
}

// Set implements Keyring.
func (m *MemoryKeyring) Set(service, user, secret string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	if m.items == nil {
		m.items = map[[2]string]string{}
	}
	m.items[[2]string{service, user}] = secret
	return nil
}

// Delete implements Keyring.
func (m *MemoryKeyring) Delete(service, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	if _, ok := m.items[[2]string{service, user}]; !ok {
		return ErrKeyNotFound
	}
	delete(m.items, [2]string{service, user})
	return nil
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

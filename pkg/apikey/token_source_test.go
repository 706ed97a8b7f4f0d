package apikey

import (
	"context"
	"errors"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/secrets"
)

// A Validator on an InternalTokenSource sends the source's current value:
// a rotated token file applies at once, without a new Validator.
func TestInternalTokenSourceFollowsARotation(t *testing.T) {
	f := newFakeLLM(t)
	good := mustGenerate(t, "live")
	f.add(good, fakeKey{subject: "alice", roles: []string{"user"}})
	cur := []byte("itok-old-0000000000000000000000000000")
	src, err := secrets.NewValue(context.Background(), "internal_token_file", false, func(context.Context) ([]byte, string, error) {
		return cur, "file", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v := newTestValidator(t, f, newFakeClock(), func(c *Config) { c.InternalToken, c.InternalTokenSource = nil, src })
	if _, err := v.Validate(context.Background(), "192.0.2.1", good); err == nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the old token was accepted by llm-api: %v", err)
	}
	cur = testToken // the file now holds the token llm-api expects
	if _, _, err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if id, err := v.Validate(context.Background(), "192.0.2.1", good); err != nil || id.Subject != "alice" {
		t.Fatalf("after the rotation: %v %v", id, err)
	}
	// one validator per source, whatever the token's value
	a := Config{URL: f.url(), InternalTokenSource: src}
	b := Config{URL: f.url(), InternalTokenSource: src}
	a, b = a.WithDefaults(), b.WithDefaults()
	if a.fingerprint() != b.fingerprint() {
		t.Fatal("same source, different fingerprints")
	}
	other := secrets.Static(testToken)
	c := Config{URL: f.url(), InternalTokenSource: other}
	if c = c.WithDefaults(); c.fingerprint() == a.fingerprint() {
		t.Fatal("different sources share a validator")
	}
	empty := Config{URL: f.url(), InternalTokenSource: secrets.Static(nil)}
	if err := empty.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatal("an empty source accepted", err)
	}
}

package apikey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"
)

// MinPepperBytes is the shortest pepper NewPeppers accepts (256 bits).
const MinPepperBytes = 32

// ErrInvalidPepper is wrapped by NewPeppers' errors (which never carry a
// secret).
var ErrInvalidPepper = errors.New("invalid api key pepper")

// Pepper is one HMAC key of the stored form, with the id stored next to each
// hash so that peppers can be rotated. The caller reads Secret from a file
// (API_KEY_PEPPER_FILE); Pepper never prints it.
type Pepper struct {
	// ID names the pepper: 1–32 characters of [A-Za-z0-9._-], e.g. "2025-06".
	ID string
	// Secret is at least MinPepperBytes bytes of random data.
	Secret []byte
}

// String shows the id only.
func (p Pepper) String() string { return "pepper(" + p.ID + ")" }

// GoString is String for %#v.
func (p Pepper) GoString() string {
	return "apikey.Pepper{ID:" + fmt.Sprintf("%q", p.ID) + ", Secret:<redacted>}"
}

// Format prints String (GoString for %#v) for every verb.
func (p Pepper) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, p.GoString())
		return
	}
	_, _ = io.WriteString(f, p.String())
}

// MarshalJSON encodes the id only.
func (p Pepper) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"id":%q,"secret":true}`, p.ID), nil
}

// MarshalZerologObject logs the id only.
func (p Pepper) MarshalZerologObject(e *zerolog.Event) { e.Str("pepper_id", p.ID).Bool("secret", true) }

// Peppers is the set of peppers of a key store: the current one, which hashes
// new and re-hashed keys, and previous ones, which still verify the hashes
// made with them until every key has been re-hashed. It copies the secrets it
// is given and never prints them. Safe for concurrent use.
type Peppers struct {
	current  Pepper
	previous []Pepper
}

// NewPeppers checks and copies the peppers: ids valid and distinct, secrets
// at least MinPepperBytes long and distinct.
func NewPeppers(current Pepper, previous ...Pepper) (*Peppers, error) {
	all := append([]Pepper{current}, previous...)
	ps := &Peppers{}
	for i, p := range all {
		if !validPepperID(p.ID) {
			return nil, fmt.Errorf("%w: id must be 1-32 characters of [A-Za-z0-9._-]", ErrInvalidPepper)
		}
		if len(p.Secret) < MinPepperBytes {
			return nil, fmt.Errorf("%w: pepper %q is %d bytes, at least %d required", ErrInvalidPepper, p.ID, len(p.Secret), MinPepperBytes)
		}
		for _, q := range all[:i] {
			if q.ID == p.ID {
				return nil, fmt.Errorf("%w: duplicate pepper id %q", ErrInvalidPepper, p.ID)
			}
			if hmac.Equal(q.Secret, p.Secret) {
				return nil, fmt.Errorf("%w: peppers %q and %q have the same secret", ErrInvalidPepper, q.ID, p.ID)
			}
		}
		c := Pepper{ID: p.ID, Secret: append([]byte(nil), p.Secret...)}
		if i == 0 {
			ps.current = c
		} else {
			ps.previous = append(ps.previous, c)
		}
	}
	return ps, nil
}

func validPepperID(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if base62[c] < 0 && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// CurrentID is the id of the pepper Hash uses.
func (p *Peppers) CurrentID() string { return p.current.ID }

// IDs lists the ids, current first.
func (p *Peppers) IDs() []string {
	ids := []string{p.current.ID}
	for _, q := range p.previous {
		ids = append(ids, q.ID)
	}
	return ids
}

// Hash returns the stored form of k under the current pepper:
// HMAC-SHA-256(pepper, whole key), and that pepper's id (store both).
func (p *Peppers) Hash(k Key) (mac []byte, pepperID string) {
	return mac256(p.current.Secret, k.Secret()), p.current.ID
}

// Verify reports whether mac is k's stored form under the pepper pepperID
// (compared in constant time), and whether it should be re-hashed with the
// current pepper (it matched under a previous one). An unknown pepper id, or
// the zero Key, never verifies.
func (p *Peppers) Verify(k Key, pepperID string, mac []byte) (ok, needsRehash bool) {
	if k.p == nil {
		return false, false
	}
	var secret []byte
	if pepperID == p.current.ID {
		secret = p.current.Secret
	} else {
		for _, q := range p.previous {
			if q.ID == pepperID {
				secret = q.Secret
			}
		}
	}
	if secret == nil {
		return false, false
	}
	if !hmac.Equal(mac256(secret, k.Secret()), mac) {
		return false, false
	}
	return true, pepperID != p.current.ID
}

func mac256(secret []byte, s string) []byte {
	m := hmac.New(sha256.New, secret)
	_, _ = io.WriteString(m, s)
	return m.Sum(nil)
}

// String shows the pepper ids only.
func (p *Peppers) String() string {
	if p == nil {
		return "peppers(none)"
	}
	return "peppers(current=" + p.current.ID + " previous=[" + strings.Join(p.IDs()[1:], ",") + "])"
}

// GoString is String for %#v.
func (p *Peppers) GoString() string { return "apikey." + p.String() }

// Format prints String (GoString for %#v) for every verb.
func (p *Peppers) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, p.GoString())
		return
	}
	_, _ = io.WriteString(f, p.String())
}

// MarshalJSON encodes the ids only.
func (p *Peppers) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Current  string   `json:"current"`
		Previous []string `json:"previous"`
	}{p.current.ID, p.IDs()[1:]})
}

// MarshalZerologObject logs the ids only.
func (p *Peppers) MarshalZerologObject(e *zerolog.Event) {
	e.Str("current", p.current.ID).Strs("previous", p.IDs()[1:])
}

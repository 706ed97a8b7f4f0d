// Package mediaid makes and checks media ids: "jan_" followed by 26
// characters of lower-case base32 (RFC 4648 alphabet a-z2-7, no padding)
// drawn from crypto/rand — 130 random bits, unguessable, and safe as a file
// name because nothing else ever passes Valid.
//
// It is not an authorization check: knowing an id grants nothing (every
// endpoint checks the owner or a signed URL).
package mediaid

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
)

// Prefix starts every id.
const Prefix = "jan_"

// randLen is the number of base32 characters after the prefix.
const randLen = 26

// Len is the length of every valid id.
const Len = len(Prefix) + randLen

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns a fresh id from crypto/rand.
func New() (string, error) { return From(rand.Reader) }

// From returns an id from r (tests inject a fixed source). 17 bytes give 27
// characters; the first 26 carry 130 random bits.
func From(r io.Reader) (string, error) {
	var b [17]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("media id: %w", err)
	}
	return Prefix + enc.EncodeToString(b[:])[:randLen], nil
}

// Valid reports whether s is a well-formed id. Everything that names a file
// passes through here first: no '/', '.', '\x00' or upper case can pass.
func Valid(s string) bool {
	if len(s) != Len || s[:len(Prefix)] != Prefix {
		return false
	}
	for i := len(Prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Package requestid is the request id contract of the edge and the
// services: a client's X-Request-ID is accepted only when it matches
// ^[A-Za-z0-9._-]{1,128}$ (so it is safe in logs and headers), otherwise a
// new one is generated; it is echoed on the response and carried in every
// log line as request_id.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
)

// Header is the request id header.
const Header = "X-Request-ID"

// MaxLen is the longest accepted request id.
const MaxLen = 128

// Valid reports whether s is an acceptable request id. It does not allocate.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// New returns 128 random bits (crypto/rand) as 32 lower-case hex digits.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// Or returns s when it is valid, else a new request id.
func Or(s string) string {
	if Valid(s) {
		return s
	}
	return New()
}

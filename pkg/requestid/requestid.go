// Package requestid is the request id contract of the edge and the
// services: a client's X-Request-ID is accepted only when it matches
// ^[A-Za-z0-9._-]{1,128}$ (so it is safe in logs and headers) and is not
// shaped like a credential (LooksLikeCredential: an sk_ API key, a JWT),
// otherwise a new one is generated; it is echoed on the response and
// carried in every log line and audit event as request_id.
//
// LooksLikeCredential is also the rule package audit applies to every
// identifier of an event: one predicate, defined here, so a value the edge
// accepts as a request id is never one the audit layer refuses.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Header is the request id header.
const Header = "X-Request-ID"

// MaxLen is the longest accepted request id.
const MaxLen = 128

// Valid reports whether s is an acceptable request id: 1..128 bytes of
// [A-Za-z0-9._-] and not LooksLikeCredential. It does not allocate.
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
	return !LooksLikeCredential(s)
}

// LooksLikeCredential reports whether v is shaped like an API key ("sk_",
// any case, at the start or after '/' or ':') or a JWT ("eyJ" and at least
// two dots). Such a value is never accepted as a request id (a client could
// otherwise plant a secret, or something a secret scanner flags, in every
// log line and audit event of its request) and never stored in an audit
// event. It does not allocate.
func LooksLikeCredential(v string) bool {
	for i := 0; i+3 <= len(v); i++ {
		if (i == 0 || v[i-1] == '/' || v[i-1] == ':') && (v[i]|0x20) == 's' && (v[i+1]|0x20) == 'k' && v[i+2] == '_' {
			return true
		}
	}
	return strings.Contains(v, "eyJ") && strings.Count(v, ".") >= 2
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

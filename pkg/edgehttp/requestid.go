package edgehttp

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// HeaderRequestID is the request id header.
const HeaderRequestID = "X-Request-ID"

// ValidRequestID reports whether s is an acceptable X-Request-ID:
// ^[A-Za-z0-9._-]{1,128}$.
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
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

// NewRequestID returns a random request id (22 base64url characters).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// RequestID returns the request's X-Request-ID when it is valid (one line,
// ValidRequestID), else a new random one. Callers echo it on the response and
// put it in every log line.
func RequestID(r *http.Request) string {
	if v := r.Header.Values(HeaderRequestID); len(v) == 1 && ValidRequestID(v[0]) {
		return v[0]
	}
	return NewRequestID()
}

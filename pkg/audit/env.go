package audit

import (
	"fmt"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

// StreamConfig is the stream part of a service's audit configuration.
type StreamConfig struct {
	// Stream is the Redis Stream key (AUDIT_REDIS_STREAM, default
	// edgeguard:audit).
	Stream string
	// MaxLen caps the stream with XADD MAXLEN ~ (AUDIT_STREAM_MAXLEN,
	// default 100000).
	MaxLen int64
}

// ReadStreamEnv reads AUDIT_REDIS_STREAM and AUDIT_STREAM_MAXLEN; both
// faults are reported at once (errors.Join).
func ReadStreamEnv(l *envconf.Loader) (StreamConfig, error) {
	var f envconf.Faults
	s := StreamConfig{Stream: l.Str("AUDIT_REDIS_STREAM", DefaultStream)}
	if err := ValidStream(s.Stream); err != nil {
		f.Add(fmt.Errorf("AUDIT_REDIS_STREAM: %w", err))
	}
	n, err := l.Int("AUDIT_STREAM_MAXLEN", DefaultMaxLen, 1000, 100_000_000)
	if f.Add(err) {
		s.MaxLen = int64(n)
	}
	return s, f.Err()
}

// ValidStream checks a stream key: 1–128 bytes of [A-Za-z0-9:._-].
func ValidStream(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%w: stream name must be 1-128 bytes", ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(allowed(c, classKeyID) || c == ':' || c == '.') {
			return fmt.Errorf("%w: stream name must be [A-Za-z0-9:._-]", ErrInvalid)
		}
	}
	return nil
}

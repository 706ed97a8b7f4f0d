package apikey

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"unsafe"

	"github.com/rs/zerolog"
)

// Format constants.
const (
	// Prefix starts every key.
	Prefix = "sk_"
	// EnvLive and EnvTest are the environment tags Generate accepts ("" for
	// none); a tagged key reads "sk_live_…" / "sk_test_…".
	EnvLive = "live"
	EnvTest = "test"
	// RandomLen is the length of the random part: 32 base62 characters,
	// 32·log2(62) ≈ 190.5 bits.
	RandomLen = 32
	// ChecksumLen is the length of the checksum: the CRC32 (IEEE) of
	// everything before it, base62, most significant digit first, zero-padded
	// (62^6 > 2^32).
	ChecksumLen = 6
	// KIDLen is the length of a key id: the first characters of the random
	// part.
	KIDLen = 8
	// MinLen and MaxLen are the lengths of a key without and with an
	// environment tag.
	MinLen = len(Prefix) + RandomLen + ChecksumLen
	MaxLen = MinLen + len("live_")
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62 maps a byte to its digit value, or -1.
var base62 = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// Reason is the stable code of a key rejection. It implements error: a
// rejection is returned as a Reason (or as one of the format errors below,
// which wrap one) and matched with errors.Is or ReasonOf. All are answered
// 401; none is a failure of the edge.
type Reason string

// Rejection reasons.
const (
	// ReasonMalformed: wrong prefix, length or character (from Parse), or
	// llm-api refused the request as malformed (400).
	ReasonMalformed Reason = "key_malformed"
	// ReasonChecksum: well-formed but the checksum does not match (a typo or
	// a guessed key).
	ReasonChecksum Reason = "key_checksum"
	// The validator's answers (docs/contracts.md).
	ReasonUnknown       Reason = "key_unknown"
	ReasonRevoked       Reason = "key_revoked"
	ReasonExpired       Reason = "key_expired"
	ReasonOwnerDisabled Reason = "owner_disabled"
)

// Reasons lists every rejection reason (documentation and tests).
var Reasons = []Reason{ReasonMalformed, ReasonChecksum, ReasonUnknown, ReasonRevoked, ReasonExpired, ReasonOwnerDisabled}

func (r Reason) Error() string { return "api key rejected: " + string(r) }

// ReasonOf extracts the Reason from an error of Parse or Validate ("" if
// err is nil or is a failure rather than a rejection).
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

// formatError is a Parse rejection with its detail. The values are package
// variables, so returning one does not allocate.
type formatError struct {
	reason Reason
	detail string
}

func (e *formatError) Error() string { return e.reason.Error() + " (" + e.detail + ")" }
func (e *formatError) Unwrap() error { return e.reason }

// Parse rejections. Each wraps ReasonMalformed or ReasonChecksum.
var (
	ErrPrefix   error = &formatError{ReasonMalformed, "wrong prefix"}
	ErrLength   error = &formatError{ReasonMalformed, "wrong length"}
	ErrCharset  error = &formatError{ReasonMalformed, "character outside base62"}
	ErrChecksum error = &formatError{ReasonChecksum, "checksum mismatch"}
)

// ErrInvalidEnv is returned by Generate for an environment other than "",
// "live" and "test".
var ErrInvalidEnv = errors.New("invalid api key environment")

// Key is a syntactically valid API key (Parse or Generate made it). It holds
// the secret, but never shows it: String, GoString, Format (every fmt verb),
// MarshalJSON, MarshalZerologObject and LogValue show only the key id, e.g.
// "sk_live_AbCd1234…". Secret returns the whole key, for the one place that
// needs it (sending it to the validator, hashing it, showing it once to its
// owner). The zero Key is not a key.
//
// The key is held as a pointer to its bytes (not a string field), so that
// even a struct that holds a Key in an unexported field — where fmt cannot
// call Key's methods and prints fields by reflection — prints an address,
// never the key. Compare keys with Equal, not ==.
type Key struct {
	p   *byte // unsafe.StringData of the whole key (immutable)
	n   uint8 // its length
	off uint8 // start of the random part: 3, or 8 with an environment tag
}

func makeKey(s string, off int) Key {
	return Key{p: unsafe.StringData(s), n: uint8(len(s)), off: uint8(off)}
}

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool {
	return subtle.ConstantTimeCompare([]byte(k.Secret()), []byte(o.Secret())) == 1
}

var (
	_ fmt.Formatter                = Key{}
	_ fmt.GoStringer               = Key{}
	_ zerolog.LogObjectMarshaler   = Key{}
	_ slog.LogValuer               = Key{}
	_ interface{ String() string } = Key{}
)

// Parse checks s's prefix, length, characters and checksum, with no I/O and
// no allocation. It returns a Key or one of ErrPrefix, ErrLength, ErrCharset
// (all ReasonMalformed) and ErrChecksum (ReasonChecksum). Input of any size is
// refused in constant time once it is longer than MaxLen.
func Parse(s string) (Key, error) {
	if len(s) < MinLen || len(s) > MaxLen {
		if len(s) >= len(Prefix) && s[:len(Prefix)] != Prefix {
			return Key{}, ErrPrefix
		}
		return Key{}, ErrLength
	}
	if s[:len(Prefix)] != Prefix {
		return Key{}, ErrPrefix
	}
	off := len(Prefix)
	if tag := s[off : off+5]; tag == "live_" || tag == "test_" {
		off += 5
	}
	if len(s) != off+RandomLen+ChecksumLen {
		return Key{}, ErrLength
	}
	for i := off; i < len(s); i++ {
		if base62[s[i]] < 0 {
			return Key{}, ErrCharset
		}
	}
	body := s[:len(s)-ChecksumLen]
	var want [ChecksumLen]byte
	encodeChecksum(&want, crcString(body))
	if s[len(body):] != string(want[:]) {
		return Key{}, ErrChecksum
	}
	return makeKey(s, off), nil
}

// Generate returns a new key from crypto/rand with the environment tag env
// ("", EnvLive or EnvTest). Its key id may collide with an existing one (one
// in 62^8 per pair): the store's unique index catches that and the caller
// generates again.
func Generate(env string) (Key, error) {
	return generate(rand.Reader, env)
}

func generate(rnd io.Reader, env string) (Key, error) {
	var b [MaxLen]byte
	n := copy(b[:], Prefix)
	switch env {
	case "":
	case EnvLive, EnvTest:
		n += copy(b[n:], env+"_")
	default:
		return Key{}, ErrInvalidEnv
	}
	off := n
	// Rejection sampling keeps every character uniform: bytes ≥ 248 (= 4·62)
	// are dropped, the rest taken mod 62.
	var buf [64]byte
	for n < off+RandomLen {
		if _, err := io.ReadFull(rnd, buf[:]); err != nil {
			return Key{}, fmt.Errorf("read random bytes: %w", err)
		}
		for _, c := range buf {
			if c < 248 && n < off+RandomLen {
				b[n] = alphabet[c%62]
				n++
			}
		}
	}
	var sum [ChecksumLen]byte
	encodeChecksum(&sum, crcString(string(b[:n])))
	n += copy(b[n:], sum[:])
	return makeKey(string(b[:n]), off), nil
}

// crcTables are the slicing-by-8 tables of CRC32 (IEEE), as hash/crc32
// builds internally.
var crcTables = func() (t [8][256]uint32) {
	t[0] = *crc32.MakeTable(crc32.IEEE)
	for i := range 256 {
		crc := t[0][i]
		for j := 1; j < 8; j++ {
			crc = t[0][crc&0xff] ^ (crc >> 8)
			t[j][i] = crc
		}
	}
	return t
}()

// crcString is crc32.ChecksumIEEE of a string without converting it to a
// byte slice (which would allocate: keys are longer than the compiler's
// 32-byte stack buffer, and hash/crc32 lets its argument escape), eight
// bytes per step.
func crcString(s string) uint32 {
	t := &crcTables
	crc := ^uint32(0)
	for len(s) >= 8 {
		crc ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		crc = t[0][s[7]] ^ t[1][s[6]] ^ t[2][s[5]] ^ t[3][s[4]] ^
			t[4][crc>>24] ^ t[5][(crc>>16)&0xff] ^ t[6][(crc>>8)&0xff] ^ t[7][crc&0xff]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		crc = t[0][byte(crc)^s[i]] ^ (crc >> 8)
	}
	return ^crc
}

func encodeChecksum(dst *[ChecksumLen]byte, v uint32) {
	for i := ChecksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[v%62]
		v /= 62
	}
}

// validKID reports whether s has the form of a key id.
func validKID(s string) bool {
	if len(s) != KIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if base62[s[i]] < 0 {
			return false
		}
	}
	return true
}

// IsZero reports whether k is the zero Key (not a key).
func (k Key) IsZero() bool { return k.p == nil }

// KID returns the key id: the first 8 characters of the random part. It is
// public: safe to log, list and send upstream.
func (k Key) KID() string {
	if k.p == nil {
		return ""
	}
	return k.Secret()[k.off : int(k.off)+KIDLen]
}

// Last4 returns the last 4 characters of the key (checksum characters), for
// showing a key to its owner next to its id.
func (k Key) Last4() string {
	if k.p == nil {
		return ""
	}
	return k.Secret()[k.n-4:]
}

// Env returns the environment tag: EnvLive, EnvTest or "".
func (k Key) Env() string {
	if k.off <= uint8(len(Prefix)) {
		return ""
	}
	return k.Secret()[len(Prefix) : k.off-1]
}

// Secret returns the whole key. It is the only method that does: call it to
// send the key to the validator, to hash it, or to show it once to its owner,
// never to log it.
func (k Key) Secret() string {
	if k.p == nil {
		return ""
	}
	return unsafe.String(k.p, k.n)
}

// String returns the key's public form: prefix, environment tag, key id and an
// ellipsis, e.g. "sk_live_AbCd1234…".
func (k Key) String() string {
	if k.p == nil {
		return "sk_(none)"
	}
	return k.Secret()[:int(k.off)+KIDLen] + "…"
}

// GoString is String for %#v.
func (k Key) GoString() string { return "apikey.Key(" + k.String() + ")" }

// Format prints String for every verb (GoString for %#v), so no verb can
// reach the secret through the struct's fields.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, k.GoString())
		return
	}
	_, _ = io.WriteString(f, k.String())
}

// MarshalJSON encodes the public form as a JSON string.
func (k Key) MarshalJSON() ([]byte, error) {
	return []byte(`"` + k.String() + `"`), nil
}

// MarshalText encodes the public form (so encoding/xml, map keys and other
// text encoders never see the secret either).
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// MarshalZerologObject logs the key id and environment.
func (k Key) MarshalZerologObject(e *zerolog.Event) {
	e.Str("kid", k.KID())
	if env := k.Env(); env != "" {
		e.Str("env", env)
	}
}

// LogValue logs the public form with log/slog.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

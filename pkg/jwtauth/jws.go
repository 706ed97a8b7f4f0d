package jwtauth

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"strings"
	"sync"

	"github.com/valyala/fastjson"
)

// b64 is the only base64 form RFC 7515 allows in a compact JWS: URL-safe,
// unpadded, canonical (Strict rejects non-zero trailing bits, so a token has
// exactly one encoding). The character scan in splitCompact rejects the
// '\r' and '\n' that encoding/base64 would otherwise skip.
var b64 = base64.RawURLEncoding.Strict()

// scratch holds the per-verification buffers; pooled so that a miss does
// not allocate them.
type scratch struct {
	header    []byte
	payload   []byte
	sig       []byte
	raw       []byte // a copy of the token; raw[:d2] is the signing input
	signing   []byte
	digest    []byte
	arena     arena
	hp, pp    fastjson.Parser
	claims    rawClaims
	hdrFields header
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	if cap(s.payload) > 64<<10 { // do not keep oversized buffers
		*s = scratch{}
	}
	s.claims = rawClaims{}
	s.hdrFields = header{}
	scratchPool.Put(s)
}

// splitCompact finds the two dots of header.payload.signature. Anything
// else — JSON serialization, JWE (five parts), empty parts — is malformed,
// except an empty payload when emptyPayload is set: RFC 7515 allows one (a
// JWS over zero bytes), but an access token always has claims, so only the
// signature-only check (StaticKeys.VerifySignature) sets it.
// Characters outside the base64url alphabet (padding, '+', '/', spaces) are
// refused by the strict decoder of every segment, except '\r' and '\n',
// which encoding/base64 skips: those are refused here. Each scan is a
// vectorised IndexByte, not a byte loop (the token is 1–2 KB).
func splitCompact(tok string, emptyPayload bool) (d1, d2 int, ok bool) {
	if strings.IndexByte(tok, '\n') >= 0 || strings.IndexByte(tok, '\r') >= 0 {
		return 0, 0, false
	}
	d1 = strings.IndexByte(tok, '.')
	if d1 <= 0 {
		return 0, 0, false
	}
	rest := strings.IndexByte(tok[d1+1:], '.')
	if rest < 0 || rest == 0 && !emptyPayload {
		return 0, 0, false
	}
	d2 = d1 + 1 + rest
	if d2 == len(tok)-1 || strings.IndexByte(tok[d2+1:], '.') >= 0 {
		return 0, 0, false
	}
	return d1, d2, true
}

// decodeInto base64url-decodes src into buf (grown as needed).
func decodeInto(buf, src []byte) ([]byte, bool) {
	n := b64.DecodedLen(len(src))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	m, err := b64.Decode(buf, src)
	if err != nil {
		return buf[:0], false
	}
	return buf[:m], true
}

// header is what the edge reads from a JWS protected header.
type header struct {
	alg      alg
	kid      []byte // aliases the parser's memory; valid until the next parse
	typ      []byte
	hasTyp   bool
	forbids  bool // jku, x5u, jwk, x5c or crit present
	badValue bool // wrong JSON type or duplicate of a field the edge reads
}

// parseHeader reads the protected header. Duplicate alg/kid/typ members are
// malformed (RFC 7515 §4: a parser must reject them or use the last; the
// edge rejects, so no two parsers can disagree on the alg).
func parseHeader(p *fastjson.Parser, js []byte, h *header) bool {
	v, err := p.ParseBytes(js)
	if err != nil {
		return false
	}
	o, err := v.Object()
	if err != nil {
		return false
	}
	var seen uint8
	o.Visit(func(k []byte, v *fastjson.Value) {
		var bit uint8
		switch string(k) {
		case "alg":
			bit = 1
			b, err := v.StringBytes()
			if err != nil {
				h.badValue = true
				return
			}
			h.alg = algFromBytes(b) // "none", HS*, unknown: algInvalid, refused by the allowlist
		case "kid":
			bit = 2
			b, err := v.StringBytes()
			if err != nil {
				h.badValue = true
				return
			}
			h.kid = b
		case "typ":
			bit = 4
			b, err := v.StringBytes()
			if err != nil {
				h.badValue = true
				return
			}
			h.typ, h.hasTyp = b, true
		case "jku", "x5u", "jwk", "x5c", "crit":
			h.forbids = true
		}
		if bit != 0 {
			if seen&bit != 0 {
				h.badValue = true
			}
			seen |= bit
		}
	})
	return seen&1 != 0 // alg is required
}

// headerTypOK accepts the typ values Keycloak and RFC 9068 use for access
// tokens (media types are case-insensitive; "application/" may be omitted).
func headerTypOK(typ []byte) bool {
	t := string(typ)
	if len(t) > 12 && strings.EqualFold(t[:12], "application/") {
		t = t[12:]
	}
	return strings.EqualFold(t, "JWT") || strings.EqualFold(t, "at+jwt")
}

func hashInto(h crypto.Hash, b []byte, dst []byte) []byte {
	switch h {
	case crypto.SHA256:
		s := sha256.Sum256(b)
		return append(dst, s[:]...)
	case crypto.SHA384:
		s := sha512.Sum384(b)
		return append(dst, s[:]...)
	case crypto.SHA512:
		s := sha512.Sum512(b)
		return append(dst, s[:]...)
	}
	return dst
}

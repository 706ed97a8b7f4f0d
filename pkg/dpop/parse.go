package dpop

import (
	"encoding/base64"
	"math"
	"strings"
	"sync"

	"github.com/valyala/fastjson"
)

// b64 is the one base64 form of a compact JWS: URL-safe, unpadded,
// canonical (Strict: no non-zero trailing bits, so a value has exactly one
// encoding — which RFC 7638 thumbprints rely on).
var b64 = base64.RawURLEncoding.Strict()

// scratch holds a parse's buffers and JSON parsers, pooled: a proof check
// allocates little besides the key it builds.
type scratch struct {
	hp, pp               fastjson.Parser
	header, payload, sig []byte
	input                []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) { scratchPool.Put(s) }

// decodeInto base64url-decodes src into buf (grown as needed).
func decodeInto(buf []byte, src string) ([]byte, bool) {
	n := b64.DecodedLen(len(src))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	m, err := b64.Decode(buf[:n], []byte(src))
	if err != nil {
		return buf[:0], false
	}
	return buf[:m], true
}

// parsed is a proof after the structural checks: header and claims read,
// the jwk turned into a public key. Its byte slices alias the scratch it
// was parsed with.
type parsed struct {
	alg          alg
	key          publicKey
	signingInput []byte
	sig          []byte

	jti, htm, htu, ath, nonce string
	iat                       int64
	hasIat                    bool
}

// parse reads a proof: size, compact form (three non-empty segments of
// strict base64url, no line breaks), the header — an object without
// duplicate members; typ dpop+jwt; alg allowed; no jku, x5u, x5c or crit; a
// public jwk that fits alg — and the claims, an object without duplicate
// members whose jti, htm, htu, ath and nonce are strings and iat a number.
// It does not verify the signature.
func parse(proof string, algs algSet, p *parsed, sc *scratch) error {
	if len(proof) > MaxProofBytes {
		return ReasonProofTooLarge
	}
	if strings.IndexByte(proof, '\n') >= 0 || strings.IndexByte(proof, '\r') >= 0 {
		return ReasonProofMalformed
	}
	d1 := strings.IndexByte(proof, '.')
	if d1 <= 0 {
		return ReasonProofMalformed
	}
	rest := strings.IndexByte(proof[d1+1:], '.')
	if rest <= 0 {
		return ReasonProofMalformed
	}
	d2 := d1 + 1 + rest
	if d2 == len(proof)-1 || strings.IndexByte(proof[d2+1:], '.') >= 0 {
		return ReasonProofMalformed
	}
	var ok bool
	if sc.header, ok = decodeInto(sc.header, proof[:d1]); !ok {
		return ReasonProofMalformed
	}
	if sc.payload, ok = decodeInto(sc.payload, proof[d1+1:d2]); !ok {
		return ReasonProofMalformed
	}
	if sc.sig, ok = decodeInto(sc.sig, proof[d2+1:]); !ok {
		return ReasonProofMalformed
	}
	p.sig = sc.sig
	sc.input = append(sc.input[:0], proof[:d2]...)
	p.signingInput = sc.input

	hv, err := sc.hp.ParseBytes(sc.header)
	if err != nil {
		return ReasonProofMalformed
	}
	ho, err := hv.Object()
	if err != nil || duplicates(ho) {
		return ReasonProofMalformed
	}
	typ, alg, jwk := ho.Get("typ"), ho.Get("alg"), ho.Get("jwk")
	for _, name := range [...]string{"jku", "x5u", "x5c", "crit"} {
		if ho.Get(name) != nil {
			return ReasonHeaderNotAllowed
		}
	}
	if typ == nil || typ.Type() != fastjson.TypeString || !strings.EqualFold(string(typ.GetStringBytes()), "dpop+jwt") {
		return ReasonType
	}
	if alg == nil || alg.Type() != fastjson.TypeString {
		return ReasonAlgNotAllowed
	}
	p.alg = algFromString(string(alg.GetStringBytes()))
	if !algs.has(p.alg) {
		return ReasonAlgNotAllowed
	}
	if jwk == nil {
		return ReasonJWKInvalid
	}
	if err := parseJWK(jwk, p.alg, &p.key); err != nil {
		return err
	}

	pv, err := sc.pp.ParseBytes(sc.payload)
	if err != nil {
		return ReasonProofMalformed
	}
	po, err := pv.Object()
	if err != nil || duplicates(po) {
		return ReasonProofMalformed
	}
	bad := false
	str := func(name string, max int) string {
		v := po.Get(name)
		if v == nil {
			return ""
		}
		b, err := v.StringBytes()
		if err != nil || len(b) > max {
			bad = true
			return ""
		}
		return string(b)
	}
	p.jti = str("jti", maxJTI)
	p.htm = str("htm", 32)
	p.htu = str("htu", maxHTU)
	p.ath = str("ath", 128)
	p.nonce = str("nonce", maxNonce)
	if v := po.Get("iat"); v != nil {
		f, err := v.Float64()
		// a NumericDate between 1970 and 5138: no overflow, no NaN
		if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
			return ReasonProofMalformed
		}
		p.iat, p.hasIat = int64(f), true
	}
	if bad {
		return ReasonProofMalformed
	}
	return nil
}

const maxMembers = 32

// duplicates reports whether an object has a member name twice (RFC 7515
// §4 and RFC 8259 leave the meaning open; two parsers that picked different
// ones could disagree on alg or htu, so the proof is refused).
// More than maxMembers members is refused too, which bounds this scan (a
// proof's header has 3, its jwk 4–6, its claims 6).
func duplicates(o *fastjson.Object) bool {
	if o.Len() > maxMembers {
		return true
	}
	dup := false
	var seen [maxMembers][]byte // aliases the parser's memory: no copy
	n := 0
	o.Visit(func(k []byte, _ *fastjson.Value) {
		for _, s := range seen[:n] {
			if string(s) == string(k) {
				dup = true
				return
			}
		}
		seen[n] = k
		n++
	})
	return dup
}

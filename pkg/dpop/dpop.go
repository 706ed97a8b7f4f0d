// Package dpop checks DPoP proofs (RFC 9449) where a DPoP-bound access
// token is used — the edge's JWT stage — and makes them for a client
// (edgectl). A proof is a compact JWS the client signs with its own key for
// one request: header typ "dpop+jwt", an asymmetric alg and the public key
// as "jwk"; claims jti, htm (the method), htu (the URL without query or
// fragment), iat, ath (the hash of the access token) and, when the server
// asks for one, nonce. The token carries the key's RFC 7638 thumbprint as
// cnf.jkt; Verifier.Verify checks that the proof was made with that key,
// for this request, recently, and only once (a ReplayGuard: Redis SET NX
// shared by every edge node, with a bounded in-process fallback).
//
// It is not an access-token verifier (pkg/jwtauth checks the token and
// reads cnf.jkt), and it is not an authorization server: it never binds
// tokens. The proof parser is strict and bounded: a proof over
// MaxProofBytes, a duplicate JSON member, a private key in the jwk, "none",
// HMAC and any alg outside the allowlist are refused before any signature
// work.
package dpop

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Reason is the stable code of a refused proof or binding. It implements
// error: a refusal is returned as a Reason value (errors.Is, ReasonOf).
type Reason string

// Proof refusals: 401 with WWW-Authenticate: DPoP error="invalid_dpop_proof"
// (the nonce reasons: error="use_dpop_nonce" and a fresh DPoP-Nonce).
const (
	ReasonProofMissing     Reason = "dpop_proof_missing"      // a bound token without a DPoP header
	ReasonProofMultiple    Reason = "dpop_proof_multiple"     // more than one DPoP header (RFC 9449 §4.3 check 1)
	ReasonProofTooLarge    Reason = "dpop_proof_too_large"    // over MaxProofBytes
	ReasonProofMalformed   Reason = "dpop_proof_malformed"    // not one compact JWS of JSON objects, a duplicate member, a wrong JSON type
	ReasonHeaderNotAllowed Reason = "dpop_header_not_allowed" // jku, x5u, x5c or crit in the header
	ReasonType             Reason = "dpop_type_invalid"       // typ is not dpop+jwt
	ReasonAlgNotAllowed    Reason = "dpop_alg_not_allowed"    // none, HS*, or outside the allowlist
	ReasonJWKInvalid       Reason = "dpop_jwk_invalid"        // no jwk, an unusable key, or one that does not fit alg
	ReasonJWKPrivate       Reason = "dpop_jwk_private"        // the jwk carries private key members
	ReasonClaimMissing     Reason = "dpop_claim_missing"      // jti, htm, htu, iat or ath missing
	ReasonMethod           Reason = "dpop_htm_mismatch"       // htm is not the request's method
	ReasonURL              Reason = "dpop_htu_mismatch"       // htu is not the public base URL + the request's path
	ReasonIssuedAt         Reason = "dpop_iat_invalid"        // iat outside the window
	ReasonTokenHash        Reason = "dpop_ath_mismatch"       // ath is not the hash of the presented token
	ReasonKeyMismatch      Reason = "dpop_key_mismatch"       // the jwk's thumbprint is not the token's cnf.jkt
	ReasonSignature        Reason = "dpop_signature_invalid"  // the signature does not verify with the jwk
	ReasonReplayed         Reason = "dpop_proof_replayed"     // the jti was seen within the window
	ReasonNonceMissing     Reason = "dpop_nonce_missing"      // nonces are required and the proof has none
	ReasonNonceInvalid     Reason = "dpop_nonce_invalid"      // not a nonce of this edge, or expired
)

// Binding refusals (the token's scheme and binding, not the proof): 401
// with WWW-Authenticate: DPoP error="invalid_token".
const (
	ReasonDowngrade     Reason = "dpop_downgrade"      // a DPoP-bound token sent as a bearer token
	ReasonTokenUnbound  Reason = "dpop_token_unbound"  // Authorization: DPoP with a token that has no cnf.jkt
	ReasonRequired      Reason = "dpop_required"       // the route requires DPoP-bound tokens (require_dpop)
	ReasonNotConfigured Reason = "dpop_not_configured" // a bound token where no public base URL is configured
)

// ReasonReplayUnavailable is a failure of the edge, not of the proof: the
// shared replay store is away and the policy is to refuse (503).
const ReasonReplayUnavailable Reason = "dpop_replay_unavailable"

// Reasons lists every reason (documentation and tests).
var Reasons = []Reason{
	ReasonProofMissing, ReasonProofMultiple, ReasonProofTooLarge, ReasonProofMalformed,
	ReasonHeaderNotAllowed, ReasonType, ReasonAlgNotAllowed, ReasonJWKInvalid, ReasonJWKPrivate,
	ReasonClaimMissing, ReasonMethod, ReasonURL, ReasonIssuedAt, ReasonTokenHash, ReasonKeyMismatch,
	ReasonSignature, ReasonReplayed, ReasonNonceMissing, ReasonNonceInvalid,
	ReasonDowngrade, ReasonTokenUnbound, ReasonRequired, ReasonNotConfigured,
	ReasonReplayUnavailable,
}

func (r Reason) Error() string { return "dpop: " + string(r) }

// Status is the HTTP status of the reason: 503 for ReasonReplayUnavailable,
// else 401.
func (r Reason) Status() int {
	if r == ReasonReplayUnavailable {
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// Error attributes of a DPoP challenge (RFC 9449 §7.1, §12.2).
const (
	ErrorInvalidProof = "invalid_dpop_proof"
	ErrorUseNonce     = "use_dpop_nonce"
	ErrorInvalidToken = "invalid_token"
)

// ErrorAttr is the challenge's error attribute of the reason ("" for
// ReasonReplayUnavailable, which is not the client's fault).
func (r Reason) ErrorAttr() string {
	switch r {
	case ReasonNonceMissing, ReasonNonceInvalid:
		return ErrorUseNonce
	case ReasonDowngrade, ReasonTokenUnbound, ReasonRequired, ReasonNotConfigured:
		return ErrorInvalidToken
	case ReasonReplayUnavailable:
		return ""
	}
	return ErrorInvalidProof
}

// ReasonOf extracts the Reason of an error ("" when err carries none).
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

// Challenge is the WWW-Authenticate value of the DPoP scheme (RFC 9449
// §7.1): realm, the error attribute when not "" and the algorithms the
// server accepts.
func Challenge(realm, errAttr string, algs []string) string {
	var b strings.Builder
	b.WriteString(`DPoP realm="`)
	b.WriteString(realm)
	b.WriteByte('"')
	if errAttr != "" {
		b.WriteString(`, error="`)
		b.WriteString(errAttr)
		b.WriteByte('"')
	}
	if len(algs) > 0 {
		b.WriteString(`, algs="`)
		b.WriteString(strings.Join(algs, " "))
		b.WriteByte('"')
	}
	return b.String()
}

// Header names.
const (
	HeaderDPoP  = "DPoP"       // the proof, on requests
	HeaderNonce = "DPoP-Nonce" // a server nonce, on answers
	// Scheme is the Authorization scheme of a DPoP-bound token.
	Scheme = "DPoP"
)

// Defaults and bounds.
const (
	// MaxProofBytes bounds a proof (RSA keys up to 4096 bits fit, with room).
	MaxProofBytes = 4096
	// DefaultWindow is how old a proof's iat may be.
	DefaultWindow = 60 * time.Second
	// MaxWindow bounds the window (a replay entry lives as long).
	MaxWindow = 5 * time.Minute
	// FutureSkew is how far in the future an iat may be (clock skew).
	FutureSkew = 5 * time.Second
	maxJTI     = 256
	maxHTU     = 4096
	maxNonce   = 256
)

// DefaultAlgorithms is the proof algorithm allowlist when none is
// configured, and every algorithm a proof can ever use: ECDSA P-256,
// RSASSA-PKCS1-v1_5 and RSASSA-PSS with SHA-256 (RSA keys of 2048 bits or
// more), and Ed25519. "none" and HMAC never: a proof's key is public.
var DefaultAlgorithms = []string{"ES256", "PS256", "RS256", "EdDSA"}

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid dpop config")

// Config configures a Verifier. Zero values take the defaults.
type Config struct {
	// Algorithms is the allowlist (a subset of DefaultAlgorithms).
	Algorithms []string
	// Window is how old iat may be (default DefaultWindow, at most
	// MaxWindow); iat may also be up to FutureSkew ahead.
	Window time.Duration
	// Replay remembers proofs (jti per key) for the window. Required: a
	// verifier that forgets proofs would accept every replay.
	Replay *ReplayGuard
	// Nonces, when set, requires a nonce this edge issued in every proof
	// (the server nonce of RFC 9449 §9).
	Nonces *Nonces
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks proofs for one configuration. Safe for concurrent use.
type Verifier struct {
	algs   algSet
	names  []string
	window time.Duration
	replay *ReplayGuard
	nonces *Nonces
	now    func() time.Time
}

// New validates cfg and returns its Verifier.
func New(cfg Config) (*Verifier, error) {
	bad := func(format string, args ...any) (*Verifier, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	v := &Verifier{window: cfg.Window, replay: cfg.Replay, nonces: cfg.Nonces, now: cfg.Now}
	for _, a := range cfg.Algorithms {
		id := algFromString(a)
		if id == algInvalid {
			return bad("algorithm %q is not allowed (allowed: %v; none and HS* never)", a, DefaultAlgorithms)
		}
		if !v.algs.has(id) {
			v.names = append(v.names, a)
		}
		v.algs |= 1 << id
	}
	switch {
	case v.window == 0:
		v.window = DefaultWindow
	case v.window < time.Second || v.window > MaxWindow:
		return bad("window %s outside 1s..%s", v.window, MaxWindow)
	}
	if v.replay == nil {
		return bad("a replay guard is required")
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Algorithms are the allowed algorithms, for the challenge's algs.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.names) }

// Nonces is the verifier's nonce source (nil: nonces are not required).
func (v *Verifier) Nonces() *Nonces { return v.nonces }

// Request is what a proof must match.
type Request struct {
	// Method is the request's method (Kong: upper case).
	Method string
	// URL is the htu the proof must carry: the public base URL (scheme and
	// host the client used, before the TLS-terminating balancer) plus the
	// request's path, without query. Compared after normalisation
	// (NormalizeURL).
	URL string
	// AccessToken is the token presented with the proof (ath is its
	// SHA-256, base64url).
	AccessToken string
	// JKT is the token's cnf.jkt.
	JKT string
}

// Verify checks proof for req and records its jti. It returns nil, a Reason
// (a refusal; ReasonReplayUnavailable is a failure of the replay store
// under the deny policy), or an error wrapping a Reason.
//
// Order: size, compact form, header (typ, alg allowlist, no jku/x5u/x5c/
// crit, a public jwk fitting alg), claims (types, no duplicates), htm,
// htu, iat, ath, the jwk's thumbprint against cnf.jkt, the nonce — all
// before the one signature verification — and, only for a proof that
// passed everything, the replay guard.
func (v *Verifier) Verify(ctx context.Context, proof string, req Request) error {
	var p parsed
	sc := getScratch()
	defer putScratch(sc)
	if err := parse(proof, v.algs, &p, sc); err != nil {
		return err
	}
	if p.jti == "" || p.htm == "" || p.htu == "" || !p.hasIat || (req.AccessToken != "" && p.ath == "") {
		return ReasonClaimMissing
	}
	if p.htm != req.Method {
		return ReasonMethod
	}
	if !SameURL(p.htu, req.URL) {
		return ReasonURL
	}
	now := v.now()
	iat := time.Unix(p.iat, 0)
	if iat.Before(now.Add(-v.window)) || iat.After(now.Add(FutureSkew)) {
		return ReasonIssuedAt
	}
	if req.AccessToken != "" && !equal(p.ath, TokenHash(req.AccessToken)) {
		return ReasonTokenHash
	}
	if !equal(p.key.thumbprint(), req.JKT) {
		return ReasonKeyMismatch
	}
	if v.nonces != nil {
		switch {
		case p.nonce == "":
			return ReasonNonceMissing
		case !v.nonces.Valid(p.nonce):
			return ReasonNonceInvalid
		}
	}
	if !p.key.verify(p.alg, p.signingInput, p.sig) {
		return ReasonSignature
	}
	// Kept until iat leaves the window, plus the future skew: a proof is
	// accepted at most while its entry lives.
	ttl := iat.Add(v.window + FutureSkew + time.Second).Sub(now)
	return v.replay.Check(ctx, replayKey(req.JKT, p.jti), ttl)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// TokenHash is the ath of an access token: base64url(SHA-256(token)).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// replayKey identifies a proof: its jti, per key (RFC 9449 §11.1: jti is
// unique per key). Hashed, so a long jti is not stored as is.
func replayKey(jkt, jti string) [16]byte {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Package rig is the load rig's stand-in for the two things the edge calls
// during a load run: Keycloak's JWKS (and a minter of Keycloak-shaped access
// tokens signed with its key) and llm-api's internal API-key validate
// endpoint (docs/contracts.md). It counts every JWKS fetch and validate call
// so a soak can check they stay bounded as designed.
//
// It is for load runs on loopback only: the signing key is generated per
// process and kept in memory, the valid keys are generated at start-up. It
// is not a test double for unit tests (pkg/jwtauth/jwttest is) and not a
// production component.
package rig

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
)

// Paths the rig serves.
const (
	JWKSPath     = "/realms/bench/protocol/openid-connect/certs"
	ValidatePath = "/internal/api-keys/validate"
	StatsPath    = "/stats"
	// MaxValidateBody is the contract's request body bound.
	MaxValidateBody = 4 << 10
)

// Stats are the rig's counters.
type Stats struct {
	JWKSFetches     int64 `json:"jwks_fetches"`
	ValidateCalls   int64 `json:"validate_calls"`
	ValidateValid   int64 `json:"validate_valid"`
	ValidateUnknown int64 `json:"validate_unknown"`
	ValidateBad     int64 `json:"validate_refused"` // bad token, method, body or key format
}

// Rig is the JWKS + validate endpoint. Build it with New; it is an
// http.Handler.
type Rig struct {
	// Issuer is the iss of minted tokens (set by the caller to
	// <rig URL>/realms/bench before minting).
	Issuer string
	// KID is the kid of the signing key, as published.
	KID string

	key      *rsa.PrivateKey
	jwks     []byte
	token    [32]byte // SHA-256 of the internal token
	keys     map[[32]byte]apikey.Key
	fetches  atomic.Int64
	calls    atomic.Int64
	valid    atomic.Int64
	unknown  atomic.Int64
	refusals atomic.Int64
}

var _ http.Handler = (*Rig)(nil)

// New builds a rig with a fresh RSA-2048 signing key, the internal token it
// accepts and the API keys it answers valid.
func New(internalToken []byte, valid []apikey.Key) (*Rig, error) {
	if len(internalToken) == 0 {
		return nil, errors.New("rig: empty internal token")
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("rig: generate signing key: %w", err)
	}
	r := &Rig{KID: "bench-1", key: k, token: sha256.Sum256(internalToken), keys: map[[32]byte]apikey.Key{}}
	r.jwks = JWKS(&k.PublicKey, r.KID)
	for _, key := range valid {
		r.keys[sha256.Sum256([]byte(key.Secret()))] = key
	}
	return r, nil
}

// JWKS renders one RSA public key as a JWKS with kid, use sig, alg RS256.
func JWKS(pub *rsa.PublicKey, kid string) []byte {
	enc := base64.RawURLEncoding
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": enc.EncodeToString(pub.N.Bytes()),
		"e": enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	return b
}

// Claims are Keycloak-shaped access-token claims for sub, issued by iss,
// valid for ttl: aud jan-api, azp jan-cli, typ Bearer, realm role user.
func Claims(iss, sub string, now time.Time, ttl time.Duration) map[string]any {
	return map[string]any{
		"exp": now.Add(ttl).Unix(), "iat": now.Unix(), "jti": fmt.Sprintf("%x", now.UnixNano()),
		"iss": iss, "aud": []string{"jan-api", "account"}, "azp": "jan-cli",
		"sub": sub, "typ": "Bearer", "preferred_username": "bench-" + sub,
		"email": sub + "@bench.invalid", "scope": "openid profile email",
		"realm_access": map[string]any{"roles": []string{"user", "offline_access"}},
	}
}

// Sign signs claims RS256 with key, header kid = kid, typ JWT.
func Sign(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("rig: claims: %w", err)
	}
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	d := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		return "", fmt.Errorf("rig: sign: %w", err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// Mint signs Claims(r.Issuer, sub, now, ttl) with the published key.
func (r *Rig) Mint(sub string, now time.Time, ttl time.Duration) (string, error) {
	return Sign(r.key, r.KID, Claims(r.Issuer, sub, now, ttl))
}

// Stats returns the counters.
func (r *Rig) Stats() Stats {
	return Stats{
		JWKSFetches: r.fetches.Load(), ValidateCalls: r.calls.Load(),
		ValidateValid: r.valid.Load(), ValidateUnknown: r.unknown.Load(), ValidateBad: r.refusals.Load(),
	}
}

func (r *Rig) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case JWKSPath:
		r.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(r.jwks)
	case ValidatePath:
		r.calls.Add(1)
		r.validate(w, req)
	case StatsPath:
		writeJSON(w, http.StatusOK, r.Stats())
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// validate answers per docs/contracts.md: X-Internal-Token checked in
// constant time, a JSON body of at most 4 KiB with the whole key.
func (r *Rig) validate(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		r.refusals.Add(1)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "POST only")
		return
	}
	got := sha256.Sum256([]byte(req.Header.Get("X-Internal-Token")))
	if len(req.Header.Values("X-Internal-Token")) != 1 || subtle.ConstantTimeCompare(got[:], r.token[:]) != 1 {
		r.refusals.Add(1)
		writeError(w, http.StatusUnauthorized, "internal_auth_failed", "internal authentication failed")
		return
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, MaxValidateBody+1))
	var body struct {
		Key string `json:"key"`
	}
	if err != nil || len(b) > MaxValidateBody || json.Unmarshal(b, &body) != nil {
		r.refusals.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed body")
		return
	}
	key, err := apikey.Parse(body.Key)
	if err != nil {
		r.refusals.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed key")
		return
	}
	known, ok := r.keys[sha256.Sum256([]byte(key.Secret()))]
	if !ok || !known.Equal(key) {
		r.unknown.Add(1)
		writeError(w, http.StatusUnauthorized, "key_unknown", "unknown key")
		return
	}
	r.valid.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"subject": "bench-key-owner-" + key.KID(), "username": "bench-keyuser", "roles": []string{"user"},
		"key_id": key.KID(), "expires_at": nil, "guest": false,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

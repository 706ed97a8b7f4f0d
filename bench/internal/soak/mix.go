// Package soak is the fixed-rate load generator of `make soak`: an open-loop
// schedule (request i is sent at start + i/rate whether or not earlier ones
// have answered, so a slow gateway cannot slow the load down), a traffic mix
// of valid and hostile credentials, the gateway's RSS sampled from
// /proc/<pid>/status, and a report with the design's bounds checked.
//
// It is a measuring tool for loopback runs, not a test double and not a
// benchmark harness for Go code (those are Benchmark* functions).
package soak

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/edgeguard/edgeguard/bench/internal/rig"
	"github.com/edgeguard/edgeguard/pkg/apikey"
)

// Kind is one class of request in the mix.
type Kind int

// The mix, per 20 requests: 2 invalid tokens (bad signature, unknown kid
// and garbage in turn), 2 random well-formed sk_ keys, 8 valid JWTs and 8
// valid API keys — 10 % invalid tokens, 10 % random keys, 80 % valid.
const (
	ValidJWT Kind = iota
	ValidKey
	BadSignature
	UnknownKID
	Garbage
	RandomKey
	numKinds
)

var kindNames = [numKinds]string{"valid_jwt", "valid_key", "bad_signature", "unknown_kid", "garbage", "random_key"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Valid reports whether requests of this kind carry a valid credential.
func (k Kind) Valid() bool { return k == ValidJWT || k == ValidKey }

// KindOf returns the kind of request i of the schedule. Within every 20
// requests the invalid ones are spread out (slots 0 and 10 invalid tokens,
// 5 and 15 random keys).
func KindOf(i int) Kind {
	switch i % 20 {
	case 0, 10:
		return [3]Kind{BadSignature, UnknownKID, Garbage}[(i/10)%3]
	case 5, 15:
		return RandomKey
	}
	if i%2 == 0 {
		return ValidJWT
	}
	return ValidKey
}

// Client addresses (X-Forwarded-For; the gateway trusts the generator's
// loopback peer as a proxy). Hostile requests come from one address, as a
// single attacker would; valid ones from a pool of documentation addresses,
// so the attacker's failed-auth limit never touches them.
const (
	AttackerIP  = "203.0.113.66"
	ValidIPPool = 50
)

// ClientIP returns the X-Forwarded-For address of request i.
func ClientIP(i int) string {
	if KindOf(i).Valid() {
		return fmt.Sprintf("198.51.100.%d", 1+(i/2)%ValidIPPool)
	}
	return AttackerIP
}

// Credentials makes the Authorization header of each kind.
type Credentials struct {
	Issuer string   // the rig's issuer
	KID    string   // the rig's published kid
	JWT    string   // a valid token
	Keys   []string // valid API keys
	Now    func() time.Time

	forger *rsa.PrivateKey // a key the rig never published
}

// NewCredentials prepares the forger key (RSA-2048, a second or so).
func NewCredentials(issuer, kid, jwt string, keys []string) (*Credentials, error) {
	if issuer == "" || kid == "" || jwt == "" || len(keys) == 0 {
		return nil, fmt.Errorf("soak: issuer, kid, a JWT and at least one API key are required")
	}
	for _, k := range keys {
		if _, err := apikey.Parse(k); err != nil {
			return nil, fmt.Errorf("soak: an API key of the rig does not parse: %w", err)
		}
	}
	f, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("soak: forger key: %w", err)
	}
	return &Credentials{Issuer: issuer, KID: kid, JWT: jwt, Keys: keys, Now: time.Now, forger: f}, nil
}

var garbage = []string{
	"not-a-token",
	"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiJ9.",              // alg none
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl", // HS256
	"eyJ.eyJ.eyJ",
	"a.b.c.d.e",
}

// Authorization returns the Authorization header value of request i.
func (c *Credentials) Authorization(i int) (string, error) {
	switch KindOf(i) {
	case ValidJWT:
		return "Bearer " + c.JWT, nil
	case ValidKey:
		return "Bearer " + c.Keys[(i/2)%len(c.Keys)], nil
	case BadSignature:
		// The rig's issuer and kid, signed by a key the rig never published.
		t, err := rig.Sign(c.forger, c.KID, rig.Claims(c.Issuer, "forged", c.Now(), time.Hour))
		return "Bearer " + t, err
	case UnknownKID:
		// A fresh kid each time: every one is a miss that may trigger a
		// JWKS refresh (capped by min_refresh_interval_seconds).
		var b [9]byte
		_, _ = rand.Read(b[:])
		kid := "rotated-" + base64.RawURLEncoding.EncodeToString(b[:])
		t, err := rig.Sign(c.forger, kid, rig.Claims(c.Issuer, "forged", c.Now(), time.Hour))
		return "Bearer " + t, err
	case Garbage:
		return "Bearer " + garbage[(i/20)%len(garbage)], nil
	case RandomKey:
		k, err := apikey.Generate(apikey.EnvLive)
		if err != nil {
			return "", err
		}
		return "Bearer " + k.Secret(), nil
	}
	return "", fmt.Errorf("soak: no credential for %v", KindOf(i))
}

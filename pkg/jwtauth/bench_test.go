package jwtauth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/rs/zerolog"
)

// The benchmarks verify Keycloak-sized tokens (~1 KB, realistic claims).
// Report the miss paths as ratios to BenchmarkFloorRS256 from the same run
// (see BENCHMARKS.md and scripts/bench.sh).

func keycloakClaims(now time.Time) map[string]any {
	return map[string]any{
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "auth_time": now.Unix(),
		"jti": "onrtac:5c8e3f4d-0d6a-4b7e-9c61-2e2b1a7f9d10", "iss": testIssuer,
		"aud": []string{"jan-api", "account"}, "sub": "5f0c2a8e-7b1d-4c3e-9a6f-1d2e3f4a5b6c",
		"typ": "Bearer", "azp": "jan-cli", "sid": "0c7e4a1b-2d3f-4e5a-8b9c-0d1e2f3a4b5c",
		"acr": "1", "allowed-origins": []string{"http://localhost:3000"},
		"realm_access":       map[string]any{"roles": []string{"default-roles-jan", "offline_access", "uma_authorization", "user"}},
		"resource_access":    map[string]any{"account": map[string]any{"roles": []string{"manage-account", "manage-account-links", "view-profile"}}},
		"scope":              "openid email profile",
		"email_verified":     true,
		"name":               "Alice Example",
		"preferred_username": "alice",
		"given_name":         "Alice",
		"family_name":        "Example",
		"email":              "alice@example.com",
	}
}

func benchToken(b *testing.B, alg string, k testKey) string {
	claims := keycloakClaims(time.Now())
	hdr := b64json(b, map[string]any{"alg": alg, "typ": "JWT", "kid": k.kid})
	return signRaw(b, alg, k.signer, hdr+"."+b64json(b, claims))
}

func benchVerifier(b *testing.B, cache bool, keys ...testKey) *Verifier {
	p := newIdP(b, jwksJSON(b, keys...))
	entries := -1
	if cache {
		entries = 0
	}
	v, err := New(Config{
		Issuers:      []Issuer{{Issuer: testIssuer, JWKSURL: p.url()}},
		Audiences:    []string{"jan-api"},
		AllowedAZP:   []string{"jan-cli"},
		CacheEntries: entries,
		Logger:       zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	waitReady(b, v)
	return v
}

// BenchmarkFloorRS256 is the floor of any RS256 verifier: SHA-256 of the
// signing input and the RSA-2048 PKCS#1 v1.5 verification, nothing else.
func BenchmarkFloorRS256(b *testing.B) {
	testKeys(b)
	tok := benchToken(b, "RS256", keyA())
	i := strings.LastIndexByte(tok, '.')
	input, sig := []byte(tok[:i]), mustDecode(tok[i+1:])
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256(input)
		if rsa.VerifyPKCS1v15(&rsaA.PublicKey, crypto.SHA256, d[:], sig) != nil {
			b.Fatal("floor verification failed")
		}
	}
}

func benchMiss(b *testing.B, alg string, key func() testKey) {
	testKeys(b)
	k := key()
	v := benchVerifier(b, false, k)
	tok := benchToken(b, alg, k)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(tok)))
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRS256Miss(b *testing.B) {
	benchMiss(b, "RS256", func() testKey { return testKey{kid: "rs", signer: rsaA} })
}

func BenchmarkVerifyES256Miss(b *testing.B) {
	benchMiss(b, "ES256", func() testKey { return testKey{kid: "ec", signer: ecP256} })
}

func BenchmarkVerifyEdDSAMiss(b *testing.B) {
	benchMiss(b, "EdDSA", func() testKey { return testKey{kid: "ed", signer: edKey} })
}

func BenchmarkVerifyHit(b *testing.B) {
	testKeys(b)
	k := testKey{kid: "rs", signer: rsaA}
	v := benchVerifier(b, true, k)
	tok := benchToken(b, "RS256", k)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHitParallel(b *testing.B) {
	testKeys(b)
	k := testKey{kid: "rs", signer: rsaA}
	v := benchVerifier(b, true, k)
	tok := benchToken(b, "RS256", k)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRejectMalformed is the cost of garbage (no key lookup, no crypto).
func BenchmarkRejectMalformed(b *testing.B) {
	testKeys(b)
	v := benchVerifier(b, true, keyA())
	tok := "x" + benchToken(b, "RS256", keyA())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = v.Verify(ctx, tok)
	}
}

// BenchmarkJWXv3ParseRS256 is the reference point: jwx v3's own jwt.Parse
// with the key set and the same claim checks, on the same token.
func BenchmarkJWXv3ParseRS256(b *testing.B) {
	testKeys(b)
	k := testKey{kid: "rs", signer: rsaA, alg: "RS256"}
	set, err := jwk.Parse(jwksJSON(b, k))
	if err != nil {
		b.Fatal(err)
	}
	tok := []byte(benchToken(b, "RS256", k))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwt.Parse(tok, jwt.WithKeySet(set), jwt.WithValidate(true),
			jwt.WithIssuer(testIssuer), jwt.WithAudience("jan-api")); err != nil {
			b.Fatal(err)
		}
	}
}

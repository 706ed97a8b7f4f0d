package jwtauth

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// fuzzSeeds are real attacks on JWT verifiers plus valid tokens to mutate.
func fuzzSeeds(f *testing.F) (valid []string, seeds []string) {
	testKeys(f)
	ka := keyA()
	ec := testKey{kid: "ec", signer: ecP256}
	ed := testKey{kid: "ed", signer: edKey}
	valid = []string{mint(f, "RS256", ka, nil, nil), mint(f, "ES256", ec, nil, nil), mint(f, "EdDSA", ed, nil, nil)}
	parts := strings.Split(valid[0], ".")
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaA.PublicKey)
	hdr := func(h map[string]any) string { return b64json(f, h) }
	// JWSs over zero bytes: valid signatures (VerifySignature accepts them),
	// never access tokens (Verify finds no claims)
	valid = append(valid,
		signRaw(f, "RS256", rsaA, hdr(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "rsa-a"})+"."),
		signRaw(f, "ES256", ecP256, hdr(map[string]any{"alg": "ES256", "kid": "ec"})+"."),
		signRaw(f, "EdDSA", edKey, hdr(map[string]any{"alg": "EdDSA", "kid": "ed"})+"."))
	seeds = append(slices.Clone(valid),
		// an empty payload under a signature made over claims, alg none, no signature
		parts[0]+".."+parts[2],
		hdr(map[string]any{"alg": "none", "kid": "rsa-a"})+"..",
		hdr(map[string]any{"alg": "none", "kid": "rsa-a"})+"..AA",
		parts[0]+"..",
		".."+parts[2],
		hdr(map[string]any{"alg": "none", "kid": "rsa-a"})+"."+parts[1]+".",
		hdr(map[string]any{"alg": "none", "kid": "rsa-a"})+"."+parts[1]+".AA",
		hs256(hdr(map[string]any{"alg": "HS256", "kid": "rsa-a"})+"."+parts[1], pubDER),
		mint(f, "RS256", testKey{kid: "../../../../../../dev/null", signer: rsaA}, nil, nil),
		mint(f, "RS256", ka, map[string]any{"jku": "http://169.254.169.254/latest"}, nil),
		mint(f, "RS256", ka, map[string]any{"jwk": map[string]any{"kty": "oct", "k": "AA"}}, nil),
		mint(f, "RS256", ka, map[string]any{"crit": []string{"b64"}, "b64": false}, nil),
		enc.EncodeToString([]byte(`{"alg":"RS256","alg":"none","kid":"rsa-a"}`))+"."+parts[1]+"."+parts[2],
		parts[0]+"."+enc.EncodeToString([]byte(`{"sub":"a","sub":"admin","exp":1e400}`))+"."+parts[2],
		parts[0]+"."+enc.EncodeToString([]byte(`{"`+strings.Repeat("k", 4000)+`":1}`))+"."+parts[2],
		parts[0]+"."+enc.EncodeToString([]byte(strings.Repeat("[", 3000)))+"."+parts[2],
		parts[0]+"=="+"."+parts[1]+"."+parts[2],
		parts[0]+"."+parts[1]+"."+parts[2]+"==",
		"Bearer "+valid[0],
		parts[0]+"."+parts[1],
		"a.b.c.d.e",
		`{"payload":"x","signatures":[]}`,
		truncSig(valid[1], 1),
		parts[0]+"."+parts[1]+"."+enc.EncodeToString(mustDecode(parts[2])[1:]),
		"...",
		"\x00.\xff.\n",
	)
	return valid, seeds
}

func FuzzVerify(f *testing.F) {
	valid, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	keys, err := ParseJWKS(jwksJSON(f, keyA(), testKey{kid: "ec", signer: ecP256}, testKey{kid: "ed", signer: edKey}))
	if err != nil {
		f.Fatal(err)
	}
	clk := newClock()
	v, err := New(Config{
		Issuers:   []Issuer{{Issuer: testIssuer, Keys: keys}},
		Audiences: []string{"jan-api"},
		Now:       clk.Now,
		Logger:    zerolog.Nop(),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err == nil {
			if !slices.Contains(valid, token) {
				t.Fatalf("accepted a token that was never signed: %q", token)
			}
			if id == nil || id.Subject == "" {
				t.Fatal("accepted without identity")
			}
			return
		}
		if r := ReasonOf(err); !slices.Contains(Reasons, r) {
			t.Fatalf("unknown reason %q", r)
		}
		if len(token) > 16 && strings.Contains(err.Error(), token) {
			t.Fatal("error carries the token")
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	valid, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	keys, err := ParseJWKS(jwksJSON(f, keyA(), testKey{kid: "ec", signer: ecP256}, testKey{kid: "ed", signer: edKey}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		_, r := keys.VerifySignature(token, nil)
		if r == "" && !slices.Contains(valid, token) {
			t.Fatalf("signature accepted on a token that was never signed: %q", token)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	testKeys(f)
	f.Add(string(jwksJSON(f, keyA(), testKey{kid: "ec", signer: ecP256}, testKey{kid: "ed", signer: edKey})))
	for _, s := range []string{``, `{}`, `{"keys":[]}`, `{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","kid":"x","x":"AA","y":"AA"}]}`, `{"keys":[{"kty":"OKP","crv":"Ed448","kid":"x","x":"AA"}]}`,
		`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`, `{"keys":[` + strings.Repeat(`{},`, 100) + `{}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		keys, err := ParseJWKS([]byte(doc))
		if err == nil && keys.Len() == 0 {
			t.Fatal("no error and no keys")
		}
	})
}

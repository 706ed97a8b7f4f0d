package dpop

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzVerify feeds any proof to the verifier: it never panics, answers nil
// or one of Reasons, and accepts nothing but a proof signed by the bound
// key. Seeded with valid proofs of each algorithm and the real attacks:
// alg none, HS256 keyed with the public key, a private key in the jwk,
// huge headers, duplicate members, nested JSON, htu variants.
func FuzzVerify(f *testing.F) {
	k, ed := mustKey(f, "ec"), mustKey(f, "ed")
	c := &clock{t: t0}
	pub, _ := json.Marshal(k.PublicJWK())
	valid := func(changes map[string]any) string {
		return forge(header(k, nil), payload(claims(newJTI()), changes), signWith(k))
	}
	seeds := []string{
		valid(nil),
		forge(header(ed, nil), payload(claims(newJTI()), nil), signWith(ed)),
		forge(header(k, map[string]any{"alg": "none"}), payload(claims(newJTI()), nil), nil),
		forge(header(k, map[string]any{"alg": "HS256"}), payload(claims(newJTI()), nil), hs256(pub)),
		forge(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"d": "AAAA"})}), payload(claims(newJTI()), nil), signWith(k)),
		forge(header(k, map[string]any{"pad": strings.Repeat("A", 3000)}), payload(claims(newJTI()), nil), signWith(k)),
		forge(`{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":`+string(k.PublicJWK())+`}`, payload(claims(newJTI()), nil), signWith(k)),
		forge(header(k, nil), `{"jti":"a","htm":"POST","htu":"https://api.example.com/x","htu":"https://api.example.com/v1/chat/completions","iat":1900000000}`, signWith(k)),
		forge(header(k, nil), `{"n":`+strings.Repeat("[", 400)+strings.Repeat("]", 400)+`}`, signWith(k)),
		forge(header(k, map[string]any{"jwk": map[string]any{"kty": map[string]any{"kty": "EC"}}}), payload(claims(newJTI()), nil), signWith(k)),
		valid(map[string]any{"htu": "https://api.example.com/v1/chat/completions?x#y"}),
		valid(map[string]any{"htu": "https://API.example.com:443/v1/./chat//completions"}),
		valid(map[string]any{"htu": "https://api.example.com/v1/chat%2Fcompletions"}),
		valid(map[string]any{"htu": "http://api.example.com/v1/chat/completions"}),
		valid(map[string]any{"htu": "//api.example.com/v1/chat/completions"}),
		valid(map[string]any{"iat": 1.9e9 + 0.5}),
		"", ".", "..", "a.b.c", "eyJ.eyJ.", strings.Repeat(".", 100),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		v := newVerifier(t, c, nil)
		err := v.Verify(context.Background(), proof, request(k))
		if err == nil {
			// only a proof of the bound key, whose signature verifies
			var p parsed
			if perr := parse(proof, v.algs, &p, new(scratch)); perr != nil || p.key.thumbprint() != k.Thumbprint() || !p.key.verify(p.alg, p.signingInput, p.sig) {
				t.Fatalf("accepted a proof that does not verify: %v", perr)
			}
			return
		}
		if r := ReasonOf(err); !slices.Contains(Reasons, r) {
			t.Fatalf("error without a known reason: %v", err)
		}
	})
}

// FuzzNormalizeURL: normalisation never panics, and a proof whose htu is
// any URL it accepts matches the request Kong makes of that URL (the same
// origin and Kong's normalised path).
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{
		"https://api.example.com/v1/chat/completions", "HTTPS://A.B:443/x/../y?q#f", "http://[::1]:80/%2e%2E/",
		"https://h/t/Abc%20123%C3%B8%2f/parent/..//test/./", "https://h/%", "https://h/%%32%65", "http://h:0/", "https://h/\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := NormalizeURL(s)
		if !ok {
			return
		}
		if !SameURL(s, n) {
			t.Fatalf("SameURL(%q, %q) is false", s, n)
		}
		if strings.ContainsAny(n[strings.Index(n, "://")+3:], "?#") {
			t.Fatalf("%q: a query or fragment survived in %q", s, n)
		}
	})
}

package cmd

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// jwsSeeds are real attacks on JWT verifiers, plus the valid tokens they
// mutate.
func jwsSeeds(t testing.TB, k *kit) (valid, seeds []string) {
	c := k.claims("u1")
	rs := k.realm.Token(t, "u1", nil)
	es := k.mint(t, "ES256", map[string]any{"kid": "ec-1"}, c)
	ed := k.mint(t, "EdDSA", map[string]any{"kid": "ed-1"}, c)
	// JWSs over zero bytes: valid signatures (RFC 7515), no claims
	empty := []string{k.signEmpty(t, "RS256", "kid-1"), k.signEmpty(t, "ES256", "ec-1"), k.signEmpty(t, "EdDSA", "ed-1")}
	valid = append([]string{rs, es, ed}, empty...)
	p, pe := parts(rs), parts(es)
	sigRS, _ := enc.DecodeString(p[2])
	sigES, _ := enc.DecodeString(pe[2])
	raw := func(s string) string { return enc.EncodeToString([]byte(s)) }
	seeds = append(slices.Clone(valid),
		// alg none, with and without a signature
		b64json(t, map[string]any{"alg": "none", "kid": "kid-1"})+"."+p[1]+".",
		b64json(t, map[string]any{"alg": "none", "kid": "kid-1"})+"."+p[1]+"."+p[2],
		b64json(t, map[string]any{"alg": "None", "typ": "JWT"})+"."+p[1]+".AA",
		// HS256 keyed with the RSA public key
		k.hs256WithPublicKey(t, "kid-1", c),
		// kid tricks
		k.mint(t, "RS256", map[string]any{"kid": "../../../../../../dev/null"}, c),
		k.mint(t, "RS256", map[string]any{"kid": "kid-1' OR '1'='1"}, c),
		k.mint(t, "RS256", map[string]any{"kid": strings.Repeat("k", 300)}, c),
		k.mint(t, "RS256", map[string]any{"kid": 1}, c),
		// header injection
		k.mint(t, "RS256", map[string]any{"kid": "kid-1", "jku": "http://169.254.169.254/latest/meta-data"}, c),
		k.mint(t, "RS256", map[string]any{"kid": "kid-1", "x5u": "http://evil.example/cert.pem"}, c),
		k.mint(t, "RS256", map[string]any{"kid": "kid-1", "jwk": map[string]any{"kty": "oct", "k": "AA"}}, c),
		k.mint(t, "RS256", map[string]any{"kid": "kid-1", "crit": []string{"b64"}, "b64": false}, c),
		// duplicate and huge JSON keys
		raw(`{"alg":"RS256","alg":"none","kid":"kid-1"}`)+"."+p[1]+"."+p[2],
		raw(`{"alg":"RS256","kid":"kid-1","kid":"ec-1"}`)+"."+p[1]+"."+p[2],
		p[0]+"."+raw(`{"sub":"a","sub":"admin","exp":1e400}`)+"."+p[2],
		raw(`{"alg":"RS256","kid":"kid-1","`+strings.Repeat("h", 4000)+`":1}`)+"."+p[1]+"."+p[2],
		p[0]+"."+raw(strings.Repeat("[", 3000))+"."+p[2],
		raw(strings.Repeat(`{"a":`, 2000))+"."+p[1]+"."+p[2],
		// bad base64: padding, standard alphabet, non-canonical last char
		p[0]+"==."+p[1]+"."+p[2],
		p[0]+"."+p[1]+"."+p[2]+"==",
		strings.NewReplacer("-", "+", "_", "/").Replace(rs),
		p[0]+"."+p[1]+"."+p[2][:len(p[2])-1]+"B",
		// signatures of the wrong length
		p[0]+"."+p[1]+"."+enc.EncodeToString(sigRS[1:]),
		p[0]+"."+p[1]+"."+enc.EncodeToString(append(slices.Clone(sigRS), 0)),
		pe[0]+"."+pe[1]+"."+enc.EncodeToString(sigES[:63]),
		pe[0]+"."+pe[1]+"."+enc.EncodeToString(append([]byte{0}, sigES...)),
		pe[0]+"."+pe[1]+"."+enc.EncodeToString(make([]byte, 64)),
		// whitespace, CRLF, NUL, Bearer
		rs+"\r\n",
		"Bearer "+rs+"\n",
		"bEaReR   "+es,
		"Bearer\t"+rs,
		p[0]+".\r\n"+p[1]+"."+p[2],
		rs+"\x00",
		"\x00"+rs,
		"\x00.\xff.\n",
		// empty payloads: a signature made over claims, alg none, none at all,
		// claims slipped under a signature over zero bytes
		p[0]+".."+p[2],
		b64json(t, map[string]any{"alg": "none", "kid": "kid-1"})+"..",
		b64json(t, map[string]any{"alg": "none", "kid": "kid-1"})+".."+p[2],
		parts(empty[0])[0]+"..",
		parts(empty[0])[0]+"."+p[1]+"."+parts(empty[0])[2],
		tamperSig(t, empty[2]),
		// not compact JWS at all
		"", "   ", ".", "...", "a.b", "a.b.c.d.e", `{"payload":"x","signatures":[]}`, "Bearer ", "sk_live_abc",
	)
	return valid, seeds
}

// FuzzJWSVerify runs "edgectl jws verify --jwks FILE -" on arbitrary stdin:
// it never panics, prints exactly one JSON line (or, for an empty input, a
// usage error and nothing on stdout), never echoes the input, and exits 0
// only for a genuinely signed token (modulo surrounding whitespace and one
// Bearer prefix).
func FuzzJWSVerify(f *testing.F) {
	k := newKit(f)
	valid, seeds := jwsSeeds(f, k)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := run(t, in, "jws", "verify", "--jwks", k.jwksPath, "-")
		if trimmed := strings.TrimSpace(in); len(trimmed) >= 16 {
			noLeak(t, r, trimmed)
		}
		if r.code == outcome.Usage {
			if strings.TrimSpace(in) != "" || r.stdout != "" || !strings.Contains(r.stderr, "no token given") {
				t.Fatalf("usage error on %q: stdout %q stderr %q", in, r.stdout, r.stderr)
			}
			return
		}
		if r.stderr != "" {
			t.Fatalf("stderr on a verdict: %q", r.stderr)
		}
		if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
			t.Fatalf("not one line: %q", r.stdout)
		}
		var out struct {
			Valid  *bool   `json:"valid"`
			Reason *string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Valid == nil {
			t.Fatalf("not a verdict: %q (%v)", r.stdout, err)
		}
		switch r.code {
		case outcome.OK:
			if !*out.Valid || out.Reason != nil {
				t.Fatalf("exit 0 with %q", r.stdout)
			}
			if !isValidInput(in, valid) {
				t.Fatalf("exit 0 for a token that was never signed: %q", in)
			}
		case outcome.Invalid:
			if *out.Valid || out.Reason == nil || !slices.Contains(jwtauth.Reasons, jwtauth.Reason(*out.Reason)) {
				t.Fatalf("exit 1 with %q", r.stdout)
			}
		default:
			t.Fatalf("exit %d", r.code)
		}
	})
}

// isValidInput reports whether in is one of the valid tokens with only
// surrounding whitespace and an optional "Bearer " prefix around it.
func isValidInput(in string, valid []string) bool {
	for _, v := range valid {
		i := strings.Index(in, v)
		if i < 0 || strings.TrimSpace(in[i+len(v):]) != "" {
			continue
		}
		before := strings.TrimLeftFunc(in[:i], unicode.IsSpace)
		if before == "" || (len(before) >= 7 && strings.EqualFold(before[:7], "bearer ") && strings.Trim(before[7:], " ") == "") {
			return true
		}
	}
	return false
}

func TestSeedsAreRejectedExceptTheSignedOnes(t *testing.T) {
	k := newKit(t)
	valid, seeds := jwsSeeds(t, k)
	for _, s := range seeds {
		r := run(t, s, "jws", "verify", "--jwks", k.jwksPath, "-")
		want := outcome.Invalid
		switch {
		case strings.TrimSpace(s) == "":
			want = outcome.Usage
		case isValidInput(s, valid):
			want = outcome.OK
		}
		if r.code != want {
			t.Errorf("exit %d, want %d for %.60q: %s%s", r.code, want, s, r.stdout, r.stderr)
		}
	}
}

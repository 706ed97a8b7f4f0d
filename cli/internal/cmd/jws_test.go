package cmd

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/tokenin"
)

func TestJWSVerifyVerdicts(t *testing.T) {
	k := newKit(t)
	c := k.claims("u1")
	rs := k.realm.Token(t, "u1", nil) // RS256, kid-1
	es := k.mint(t, "ES256", map[string]any{"kid": "ec-1"}, c)
	ed := k.mint(t, "EdDSA", map[string]any{"kid": "ed-1"}, c)
	p := parts(rs)
	otherPayload := b64json(t, k.claims("admin"))
	huge := strings.Repeat("a", tokenin.MaxBytes+1)
	// JWSs over zero bytes (RFC 7515 allows them; "jws verify" checks only
	// the signature)
	emptyRS, emptyES, emptyED := k.signEmpty(t, "RS256", "kid-1"), k.signEmpty(t, "ES256", "ec-1"), k.signEmpty(t, "EdDSA", "ed-1")

	tests := []struct {
		name   string
		stdin  string
		args   []string // after "jws verify --jwks FILE"
		code   int
		reason string
		kid    string
		alg    string
	}{
		{name: "valid RS256 from the realm", stdin: rs, args: []string{"-"}, code: 0, kid: "kid-1", alg: "RS256"},
		{name: "valid ES256", stdin: es, args: []string{"-"}, code: 0, kid: "ec-1", alg: "ES256"},
		{name: "valid EdDSA", stdin: ed, args: []string{"-"}, code: 0, kid: "ed-1", alg: "EdDSA"},
		{name: "token as argument", args: []string{rs}, code: 0, kid: "kid-1", alg: "RS256"},
		{name: "trailing newline on stdin", stdin: rs + "\n", args: []string{"-"}, code: 0, kid: "kid-1"},
		{name: "CRLF and spaces around", stdin: "  " + rs + "\r\n", args: []string{"-"}, code: 0, kid: "kid-1"},
		{name: "Bearer prefix", stdin: "Bearer " + rs, args: []string{"-"}, code: 0, kid: "kid-1"},
		{name: "bearer prefix lower case, two spaces", stdin: "bearer  " + rs + "\n", args: []string{"-"}, code: 0, kid: "kid-1"},
		{name: "Bearer prefix twice", stdin: "Bearer Bearer " + rs, args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "Bearer with a tab", stdin: "Bearer\t" + rs, args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "inner whitespace", stdin: p[0] + ". " + p[1] + "." + p[2], args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "inner newline", stdin: p[0] + "." + p[1] + "\n." + p[2], args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "NUL byte", stdin: rs + "\x00", args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "tampered signature", stdin: tamperSig(t, rs), args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "kid-1", alg: "RS256"},
		{name: "tampered payload", stdin: p[0] + "." + otherPayload + "." + p[2], args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "kid-1"},
		{name: "tampered ES256 signature", stdin: tamperSig(t, es), args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "ec-1"},
		{name: "unknown kid", stdin: k.mint(t, "RS256", map[string]any{"kid": "nope"}, c), args: []string{"-"}, code: 1, reason: "unknown_kid", kid: "nope", alg: "RS256"},
		{name: "no kid", stdin: k.mint(t, "RS256", nil, c), args: []string{"-"}, code: 1, reason: "unknown_kid"},
		{name: "kid path traversal", stdin: k.mint(t, "RS256", map[string]any{"kid": "../../../../dev/null"}, c), args: []string{"-"}, code: 1, reason: "unknown_kid"},
		{name: "alg none, empty signature", stdin: b64json(t, map[string]any{"alg": "none", "kid": "kid-1"}) + "." + p[1] + ".", args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "alg none with a signature", stdin: b64json(t, map[string]any{"alg": "none", "kid": "kid-1"}) + "." + p[1] + "." + p[2], args: []string{"-"}, code: 1, reason: "alg_not_allowed", kid: "kid-1", alg: ""},
		{name: "HS256 keyed with the RSA public key", stdin: k.hs256WithPublicKey(t, "kid-1", c), args: []string{"-"}, code: 1, reason: "alg_not_allowed"},
		{name: "PS256 on a key declared RS256", stdin: k.mint(t, "PS256", map[string]any{"kid": "kid-1"}, c), args: []string{"-"}, code: 1, reason: "key_alg_mismatch"},
		{name: "ES256 header on the RSA key", stdin: k.mint(t, "ES256", map[string]any{"kid": "kid-1"}, c), args: []string{"-"}, code: 1, reason: "key_alg_mismatch"},
		{name: "jku injection", stdin: k.mint(t, "RS256", map[string]any{"kid": "kid-1", "jku": "http://169.254.169.254/jwks"}, c), args: []string{"-"}, code: 1, reason: "header_not_allowed"},
		{name: "embedded jwk", stdin: k.mint(t, "RS256", map[string]any{"kid": "kid-1", "jwk": map[string]any{"kty": "oct", "k": "AA"}}, c), args: []string{"-"}, code: 1, reason: "header_not_allowed"},
		{name: "ID token typ header", stdin: k.mint(t, "RS256", map[string]any{"kid": "kid-1", "typ": "ID"}, c), args: []string{"-"}, code: 1, reason: "token_type_invalid"},
		{name: "claims are not checked: expired token", stdin: k.realm.Token(t, "u1", map[string]any{"exp": 1}), args: []string{"-"}, code: 0, kid: "kid-1"},
		{name: "empty payload, RS256", stdin: emptyRS, args: []string{"-"}, code: 0, kid: "kid-1", alg: "RS256"},
		{name: "empty payload, ES256", stdin: emptyES + "\n", args: []string{"-"}, code: 0, kid: "ec-1", alg: "ES256"},
		{name: "empty payload, EdDSA as argument", args: []string{emptyED}, code: 0, kid: "ed-1", alg: "EdDSA"},
		{name: "empty payload, tampered RS256 signature", stdin: tamperSig(t, emptyRS), args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "kid-1", alg: "RS256"},
		{name: "empty payload, tampered EdDSA signature", stdin: tamperSig(t, emptyED), args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "ed-1", alg: "EdDSA"},
		{name: "payload dropped from a signed token", stdin: p[0] + ".." + p[2], args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "kid-1", alg: "RS256"},
		{name: "payload added to a signature over zero bytes", stdin: parts(emptyRS)[0] + "." + p[1] + "." + parts(emptyRS)[2], args: []string{"-"}, code: 1, reason: "signature_invalid", kid: "kid-1"},
		{name: "empty payload, no signature", stdin: parts(emptyRS)[0] + "..", args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "empty payload, alg none", stdin: b64json(t, map[string]any{"alg": "none", "kid": "kid-1"}) + "..", args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "garbage", stdin: "hello world", args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "JSON serialization", stdin: `{"payload":"x","signatures":[]}`, args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "padding", stdin: p[0] + "==." + p[1] + "." + p[2], args: []string{"-"}, code: 1, reason: "token_malformed"},
		{name: "huge stdin", stdin: huge, args: []string{"-"}, code: 1, reason: "token_too_large"},
		{name: "huge argument", args: []string{huge}, code: 1, reason: "token_too_large"},
		{name: "alg restricted to ES256 rejects RS256", stdin: rs, args: []string{"--alg", "ES256", "-"}, code: 1, reason: "alg_not_allowed", kid: "kid-1", alg: "RS256"},
		{name: "alg restricted to ES256 accepts ES256", stdin: es, args: []string{"--alg", "ES256", "-"}, code: 0, kid: "ec-1", alg: "ES256"},
		{name: "alg list, repeated and comma-separated", stdin: ed, args: []string{"--alg", "RS256,ES256", "--alg", "EdDSA", "-"}, code: 0, alg: "EdDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"jws", "verify", "--jwks", k.jwksPath}, tt.args...)
			r := run(t, tt.stdin, args...)
			tok := tt.stdin
			if tok == "" {
				tok = tt.args[len(tt.args)-1]
			}
			noLeak(t, r, tokenSecrets(tok)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", r.code, tt.code, r.stdout, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr on a verdict: %q", r.stderr)
			}
			m := verdict(t, r)
			if m["valid"] != (tt.code == 0) {
				t.Errorf("valid = %v with exit %d", m["valid"], r.code)
			}
			reason, hasReason := m["reason"]
			if tt.code == 0 && hasReason {
				t.Errorf("reason present on a valid token: %q", r.stdout)
			}
			if tt.code != 0 && reason != tt.reason {
				t.Errorf("reason %v, want %q", reason, tt.reason)
			}
			if tt.kid != "" && m["kid"] != tt.kid {
				t.Errorf("kid %v, want %q", m["kid"], tt.kid)
			}
			if tt.alg != "" && m["alg"] != tt.alg {
				t.Errorf("alg %v, want %q", m["alg"], tt.alg)
			}
		})
	}
}

// tokenSecrets is a token and its parts: none may be printed.
func tokenSecrets(tok string) []string {
	out := []string{strings.TrimSpace(tok)}
	out = append(out, strings.Split(strings.TrimSpace(tok), ".")...)
	return out
}

func TestJWSVerifyUsageErrorsExit2(t *testing.T) {
	k := newKit(t)
	tok := k.realm.Token(t, "u1", nil)
	dir := t.TempDir()
	noKeys := writeFile(t, "oct.json", []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}]}`))
	notJSON := writeFile(t, "bad.json", []byte("not a jwks"))
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // in stderr
	}{
		{"no --jwks", tok, []string{"jws", "verify", "-"}, "--jwks FILE is required"},
		{"missing jwks file", tok, []string{"jws", "verify", "--jwks", dir + "/missing.json", "-"}, "no such file"},
		{"jwks file is a directory", tok, []string{"jws", "verify", "--jwks", dir, "-"}, "jwks file"},
		{"jwks without usable keys", tok, []string{"jws", "verify", "--jwks", noKeys, "-"}, "no usable signature keys"},
		{"jwks not JSON", tok, []string{"jws", "verify", "--jwks", notJSON, "-"}, "jwks file"},
		{"no token argument", tok, []string{"jws", "verify", "--jwks", k.jwksPath}, "accepts 1 arg"},
		{"two token arguments", "", []string{"jws", "verify", "--jwks", k.jwksPath, tok, tok}, "accepts 1 arg"},
		{"empty stdin", "", []string{"jws", "verify", "--jwks", k.jwksPath, "-"}, "no token given"},
		{"whitespace-only stdin", " \r\n\t", []string{"jws", "verify", "--jwks", k.jwksPath, "-"}, "no token given"},
		{"empty argument", "", []string{"jws", "verify", "--jwks", k.jwksPath, ""}, "no token given"},
		{"alg none", tok, []string{"jws", "verify", "--jwks", k.jwksPath, "--alg", "none", "-"}, `"none" is not allowed`},
		{"alg HS256", tok, []string{"jws", "verify", "--jwks", k.jwksPath, "--alg", "HS256", "-"}, `"HS256" is not allowed`},
		{"unknown flag", tok, []string{"jws", "verify", "--jwks", k.jwksPath, "--nope", "-"}, "unknown flag"},
		{"jws without subcommand", "", []string{"jws"}, "missing subcommand"},
		{"no command", "", nil, "missing command"},
		{"token given as a command is not echoed", "", []string{tok}, "unknown command"},
		{"token given as a flag value is not echoed", "", []string{"token", "verify", "--issuer", "https://x", "--leeway=" + tok, "-"}, "invalid argument"},
		{"token given as jwks path is not echoed", "", []string{"jws", "verify", "--jwks", tok, "-"}, "jwks file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.stdin, tt.args...)
			noLeak(t, r, tokenSecrets(tok)...)
			if r.code != outcome.Usage {
				t.Fatalf("exit %d, want 2 (stdout %q, stderr %q)", r.code, r.stdout, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout on a usage error: %q", r.stdout)
			}
			if !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("stderr %q, want %q and a usage hint", r.stderr, tt.want)
			}
		})
	}
}

func TestJWKSWithPrivateKeysWorksButWarnsWithoutPrintingThem(t *testing.T) {
	k := newKit(t)
	d := enc.EncodeToString(k.rsa.Private.D.Bytes())
	n := enc.EncodeToString(k.rsa.Private.N.Bytes())
	pk := k.rsa.Private
	b := func(i interface{ Bytes() []byte }) string { return enc.EncodeToString(i.Bytes()) }
	priv := `{"keys":[{"kty":"RSA","kid":"kid-1","alg":"RS256","use":"sig","n":"` + n + `","e":"AQAB","d":"` + d +
		`","p":"` + b(pk.Primes[0]) + `","q":"` + b(pk.Primes[1]) + `","dp":"` + b(pk.Precomputed.Dp) +
		`","dq":"` + b(pk.Precomputed.Dq) + `","qi":"` + b(pk.Precomputed.Qinv) + `"}]}`
	path := writeFile(t, "private.json", []byte(priv))
	tok := k.realm.Token(t, "u1", nil)
	r := run(t, tok, "jws", "verify", "--jwks", path, "-")
	noLeak(t, r, d, b(pk.Primes[0]), b(pk.Primes[1]), tok)
	if r.code != 0 {
		t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "private key members") {
		t.Errorf("no warning: %q", r.stderr)
	}

	// Unusable private material: the error names the problem, not the key.
	ecPriv := `{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"` + d[:43] + `","y":"` + d[:43] + `","d":"` + d + `"}]}`
	path = writeFile(t, "ec-private.json", []byte(ecPriv))
	r = run(t, tok, "jws", "verify", "--jwks", path, "-")
	noLeak(t, r, d, d[:43], tok)
	if r.code != outcome.Usage {
		t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestLongKIDIsNotEchoed(t *testing.T) {
	k := newKit(t)
	r := run(t, k.mint(t, "RS256", map[string]any{"kid": strings.Repeat("k", 257)}, k.claims("u1")), "jws", "verify", "--jwks", k.jwksPath, "-")
	if m := verdict(t, r); r.code != 1 || m["reason"] != "unknown_kid" || m["kid"] != nil {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
}

func TestVersionFlag(t *testing.T) {
	r := run(t, "", "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "edgectl ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

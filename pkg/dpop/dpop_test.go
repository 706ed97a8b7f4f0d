package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/valyala/fastjson"
)

func TestProofOfEveryAlgorithmIsAccepted(t *testing.T) {
	for _, name := range []string{"ec", "ed", "rsa"} {
		t.Run(name, func(t *testing.T) {
			c := &clock{t: t0}
			v := newVerifier(t, c, nil)
			k := mustKey(t, name)
			p, err := k.Proof(testMethod, testURL+"?stream=true#frag", ProofOptions{AccessToken: testToken, Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(v, p, request(k)); err != nil {
				t.Fatalf("a valid %s proof: %v", k.Algorithm(), err)
			}
		})
	}
}

// PKCS#1 v1.5 (RS256) proofs are accepted too (Key makes PS256 ones).
func TestRS256ProofIsAccepted(t *testing.T) {
	c := &clock{t: t0}
	v := newVerifier(t, c, nil)
	k := mustKey(t, "rsa")
	p := forge(header(k, map[string]any{"alg": "RS256"}), payload(claims(newJTI()), nil), func(in []byte) []byte {
		d := sha256Sum(in)
		sig, _ := rsa.SignPKCS1v15(nil, signer("rsa").(*rsa.PrivateKey), crypto.SHA256, d)
		return sig
	})
	if err := verify(v, p, request(k)); err != nil {
		t.Fatalf("RS256: %v", err)
	}
}

// The thumbprint is RFC 7638's, as jwx computes it (and Keycloak, whose
// cnf.jkt tests/e2e compares with it).
func TestThumbprintIsRFC7638(t *testing.T) {
	for _, name := range []string{"ec", "ed", "rsa"} {
		k := mustKey(t, name)
		jk, err := jwk.Import(signer(name).Public())
		if err != nil {
			t.Fatal(err)
		}
		tp, err := jk.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if want := base64.RawURLEncoding.EncodeToString(tp); k.Thumbprint() != want {
			t.Errorf("%s: thumbprint %s, jwx says %s", name, k.Thumbprint(), want)
		}
		// the key's parsed form agrees
		var p parsed
		proof, _ := k.Proof("GET", testURL, ProofOptions{})
		if err := parse(proof, algSet(0xff), &p, new(scratch)); err != nil {
			t.Fatal(err)
		}
		if p.key.thumbprint() != k.Thumbprint() {
			t.Errorf("%s: parsed jwk's thumbprint differs", name)
		}
	}
	// RFC 7638 §3.1's example key
	var p publicKey
	ex := `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	if err := parseJWK(mustJSON(t, ex), algRS256, &p); err != nil {
		t.Fatal(err)
	}
	if got := p.thumbprint(); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("RFC 7638 example: %s", got)
	}
}

// Every refusal answers its stable reason; each proof is otherwise valid.
func TestRefusedProofsAnswerTheirReason(t *testing.T) {
	k, other := mustKey(t, "ec"), mustKey(t, "ec2")
	ed := mustKey(t, "ed")
	ok := func(h, p string) string { return forge(h, p, signWith(k)) }
	valid := func(changes map[string]any) string { return ok(header(k, nil), payload(claims(newJTI()), changes)) }
	pubJSON, _ := json.Marshal(k.PublicJWK())
	ecPriv := signer("ec").(*ecdsa.PrivateKey)
	dBytes, _ := ecPriv.Bytes()
	tests := []struct {
		name  string
		proof string
		req   func(Request) Request
		want  Reason
	}{
		{"empty", "", nil, ReasonProofMalformed},
		{"two parts", "a.b", nil, ReasonProofMalformed},
		{"four parts", valid(nil) + ".x", nil, ReasonProofMalformed},
		{"too large", strings.Repeat("a", MaxProofBytes+1), nil, ReasonProofTooLarge},
		{"huge header", ok(header(k, map[string]any{"x": strings.Repeat("A", 4000)}), payload(claims(newJTI()), nil)), nil, ReasonProofTooLarge},
		{"padding", strings.Replace(valid(nil), ".", "=.", 1), nil, ReasonProofMalformed},
		{"line break", strings.Replace(valid(nil), ".", ".\n", 1), nil, ReasonProofMalformed},
		{"header not JSON", ok("{", payload(claims(newJTI()), nil)), nil, ReasonProofMalformed},
		{"header an array", ok(`[1]`, payload(claims(newJTI()), nil)), nil, ReasonProofMalformed},
		{"payload an array", ok(header(k, nil), `["jti"]`), nil, ReasonProofMalformed},
		{"typ missing", ok(header(k, map[string]any{"typ": nil}), payload(claims(newJTI()), nil)), nil, ReasonType},
		{"typ JWT", ok(header(k, map[string]any{"typ": "JWT"}), payload(claims(newJTI()), nil)), nil, ReasonType},
		{"typ a number", ok(header(k, map[string]any{"typ": 1}), payload(claims(newJTI()), nil)), nil, ReasonType},
		{"typ in upper case is the same media type", ok(header(k, map[string]any{"typ": "DPoP+JWT"}), payload(claims(newJTI()), nil)), nil, ""},
		{"alg none, no signature", forge(header(k, map[string]any{"alg": "none"}), payload(claims(newJTI()), nil), nil), nil, ReasonProofMalformed},
		{"alg none with a signature", ok(header(k, map[string]any{"alg": "none"}), payload(claims(newJTI()), nil)), nil, ReasonAlgNotAllowed},
		{"alg None", ok(header(k, map[string]any{"alg": "None"}), payload(claims(newJTI()), nil)), nil, ReasonAlgNotAllowed},
		{"HS256 keyed with the public jwk", forge(header(k, map[string]any{"alg": "HS256"}), payload(claims(newJTI()), nil), hs256(pubJSON)), nil, ReasonAlgNotAllowed},
		{"HS256 with an oct jwk", forge(header(k, map[string]any{"alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}), payload(claims(newJTI()), nil), hs256([]byte("secret"))), nil, ReasonAlgNotAllowed},
		{"ES384", ok(header(k, map[string]any{"alg": "ES384"}), payload(claims(newJTI()), nil)), nil, ReasonAlgNotAllowed},
		{"alg a number", ok(header(k, map[string]any{"alg": 256}), payload(claims(newJTI()), nil)), nil, ReasonAlgNotAllowed},
		{"jku", ok(header(k, map[string]any{"jku": "https://attacker.example/jwks"}), payload(claims(newJTI()), nil)), nil, ReasonHeaderNotAllowed},
		{"x5c", ok(header(k, map[string]any{"x5c": []string{"MIIB"}}), payload(claims(newJTI()), nil)), nil, ReasonHeaderNotAllowed},
		{"crit", ok(header(k, map[string]any{"crit": []string{"exp"}}), payload(claims(newJTI()), nil)), nil, ReasonHeaderNotAllowed},
		{"kid is harmless", ok(header(k, map[string]any{"kid": "k1"}), payload(claims(newJTI()), nil)), nil, ""},
		{"no jwk", ok(header(k, map[string]any{"jwk": nil}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk a string", ok(header(k, map[string]any{"jwk": "x"}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"private key in jwk (d)", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"d": b64.EncodeToString(dBytes)})}), payload(claims(newJTI()), nil)), nil, ReasonJWKPrivate},
		{"private RSA members", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"p": "AQAB", "q": "AQAB"})}), payload(claims(newJTI()), nil)), nil, ReasonJWKPrivate},
		{"symmetric k", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"k": "c2VjcmV0"})}), payload(claims(newJTI()), nil)), nil, ReasonJWKPrivate},
		{"jwk of another type than alg", ok(header(k, map[string]any{"jwk": ed.PublicJWK()}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk P-384", ok(header(k, map[string]any{"jwk": mustKeyJWKP384(t)}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk point off the curve", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"y": b64.EncodeToString(make([]byte, 32))})}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk x not canonical base64url", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"x": jwkMember(k, "x") + "="})}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk alg differs", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"alg": "ES384"})}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk use enc", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"use": "enc"})}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk key_ops sign only", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"key_ops": []string{"sign"}})}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"jwk nested objects", ok(header(k, map[string]any{"jwk": jwkWith(k, map[string]any{"x": map[string]any{"x": map[string]any{"x": "y"}}})}), payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"duplicate alg in header", ok(`{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":`+string(k.PublicJWK())+`}`, payload(claims(newJTI()), nil)), nil, ReasonProofMalformed},
		{"duplicate x in jwk", ok(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+strings.Replace(string(k.PublicJWK()), `"kty"`, `"x":"AAAA","kty"`, 1)+`}`, payload(claims(newJTI()), nil)), nil, ReasonJWKInvalid},
		{"duplicate htu in claims", ok(header(k, nil), strings.Replace(payload(claims(newJTI()), nil), `"htu"`, `"htu":"https://attacker.example/","htu"`, 1)), nil, ReasonProofMalformed},
		{"deeply nested claim", ok(header(k, nil), strings.Replace(payload(claims(newJTI()), nil), `{`, `{"n":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`,`, 1)), nil, ReasonProofMalformed},
		{"many members", ok(header(k, nil), strings.Replace(payload(claims(newJTI()), nil), `{`, `{`+manyMembers(40), 1)), nil, ReasonProofMalformed},
		{"jti missing", valid(map[string]any{"jti": nil}), nil, ReasonClaimMissing},
		{"jti a number", valid(map[string]any{"jti": 5}), nil, ReasonProofMalformed},
		{"jti too long", valid(map[string]any{"jti": strings.Repeat("j", 257)}), nil, ReasonProofMalformed},
		{"htm missing", valid(map[string]any{"htm": nil}), nil, ReasonClaimMissing},
		{"htu missing", valid(map[string]any{"htu": nil}), nil, ReasonClaimMissing},
		{"iat missing", valid(map[string]any{"iat": nil}), nil, ReasonClaimMissing},
		{"iat a string", valid(map[string]any{"iat": "1900000000"}), nil, ReasonProofMalformed},
		{"iat negative", valid(map[string]any{"iat": -1}), nil, ReasonProofMalformed},
		{"iat huge", valid(map[string]any{"iat": 1e300}), nil, ReasonProofMalformed},
		{"ath missing", valid(map[string]any{"ath": nil}), nil, ReasonClaimMissing},
		{"another method", valid(map[string]any{"htm": "GET"}), nil, ReasonMethod},
		{"method in lower case", valid(map[string]any{"htm": "post"}), nil, ReasonMethod},
		{"another path", valid(map[string]any{"htu": "https://api.example.com/v1/models"}), nil, ReasonURL},
		{"another host", valid(map[string]any{"htu": "https://attacker.example/v1/chat/completions"}), nil, ReasonURL},
		{"http instead of https", valid(map[string]any{"htu": "http://api.example.com/v1/chat/completions"}), nil, ReasonURL},
		{"another port", valid(map[string]any{"htu": "https://api.example.com:8443/v1/chat/completions"}), nil, ReasonURL},
		{"relative htu", valid(map[string]any{"htu": "/v1/chat/completions"}), nil, ReasonURL},
		{"userinfo in htu", valid(map[string]any{"htu": "https://u:p@api.example.com/v1/chat/completions"}), nil, ReasonURL},
		{"htu with query and fragment (ignored)", valid(map[string]any{"htu": "https://api.example.com/v1/chat/completions?x=1#y"}), nil, ""},
		{"htu with case, default port and dot segments", valid(map[string]any{"htu": "HTTPS://API.Example.COM:443/v1/x/../chat/%63ompletions"}), nil, ""},
		{"iat beyond the window", valid(map[string]any{"iat": t0.Add(-61 * time.Second).Unix()}), nil, ReasonIssuedAt},
		{"iat at the window's edge", valid(map[string]any{"iat": t0.Add(-60 * time.Second).Unix()}), nil, ""},
		{"iat in the future", valid(map[string]any{"iat": t0.Add(6 * time.Second).Unix()}), nil, ReasonIssuedAt},
		{"iat within the skew", valid(map[string]any{"iat": t0.Add(5 * time.Second).Unix()}), nil, ""},
		{"ath of another token", valid(map[string]any{"ath": TokenHash("another.token.x")}), nil, ReasonTokenHash},
		{"token bound to another key", valid(nil), func(r Request) Request { r.JKT = other.Thumbprint(); return r }, ReasonKeyMismatch},
		{"proof of another key", forge(header(other, nil), payload(claims(newJTI()), nil), signWith(other)), nil, ReasonKeyMismatch},
		{"jwk of the bound key, signed by another", forge(header(k, nil), payload(claims(newJTI()), nil), signWith(other)), nil, ReasonSignature},
		{"signature of other claims", func() string {
			a := valid(nil)
			b := valid(map[string]any{"jti": "changed"})
			return a[:strings.LastIndexByte(a, '.')] + b[strings.LastIndexByte(b, '.'):]
		}(), nil, ReasonSignature},
		{"signature one byte short", forge(header(k, nil), payload(claims(newJTI()), nil), func(in []byte) []byte { return signWith(k)(in)[:63] }), nil, ReasonSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: t0}
			v := newVerifier(t, c, nil)
			req := request(k)
			if tc.req != nil {
				req = tc.req(req)
			}
			err := verify(v, tc.proof, req)
			if got := ReasonOf(err); got != tc.want || (tc.want == "") != (err == nil) {
				t.Fatalf("got %v (%q), want %q", err, got, tc.want)
			}
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`"m` + strconv.Itoa(i) + `":1,`)
	}
	return b.String()
}

func mustJSON(t *testing.T, s string) *fastjson.Value {
	t.Helper()
	v, err := fastjson.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func jwkMember(k *Key, name string) string {
	var m map[string]string
	_ = json.Unmarshal(k.PublicJWK(), &m)
	return m[name]
}

func mustKeyJWKP384(t *testing.T) json.RawMessage {
	t.Helper()
	pub := signer("ec384").Public().(*ecdsa.PublicKey)
	raw, _ := pub.Bytes()
	b, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-384", "x": b64.EncodeToString(raw[1:49]), "y": b64.EncodeToString(raw[49:])})
	return b
}

func sha256Sum(b []byte) []byte {
	h := crypto.SHA256.New()
	h.Write(b)
	return h.Sum(nil)
}

func TestAReplayedProofIsRefusedUntilItsWindowEnds(t *testing.T) {
	c := &clock{t: t0}
	v := newVerifier(t, c, nil)
	k := mustKey(t, "ec")
	p, _ := k.Proof(testMethod, testURL, ProofOptions{AccessToken: testToken, Now: t0})
	if err := verify(v, p, request(k)); err != nil {
		t.Fatal(err)
	}
	c.add(30 * time.Second)
	if err := verify(v, p, request(k)); ReasonOf(err) != ReasonReplayed {
		t.Fatalf("replay: %v", err)
	}
	c.add(31 * time.Second) // now beyond the window: refused for its iat, not remembered
	if err := verify(v, p, request(k)); ReasonOf(err) != ReasonIssuedAt {
		t.Fatalf("after the window: %v", err)
	}
}

// A proof that failed a check is not remembered: the same jti in a correct
// proof still works (only valid proofs fill the replay store).
func TestOnlyAcceptedProofsAreRemembered(t *testing.T) {
	c := &clock{t: t0}
	v := newVerifier(t, c, nil)
	k := mustKey(t, "ec")
	jti := newJTI()
	bad := forge(header(k, nil), payload(claims(jti), map[string]any{"htm": "GET"}), signWith(k))
	if err := verify(v, bad, request(k)); ReasonOf(err) != ReasonMethod {
		t.Fatal(err)
	}
	good := forge(header(k, nil), payload(claims(jti), nil), signWith(k))
	if err := verify(v, good, request(k)); err != nil {
		t.Fatal(err)
	}
	if n := v.replay.Local.Len(); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
}

// The same jti under two keys is two proofs (jti is unique per key).
func TestJTIIsPerKey(t *testing.T) {
	c := &clock{t: t0}
	v := newVerifier(t, c, nil)
	for _, name := range []string{"ec", "ec2"} {
		k := mustKey(t, name)
		p := forge(header(k, nil), payload(claims("same-jti"), nil), signWith(k))
		if err := verify(v, p, request(k)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestNoncesWhenRequired(t *testing.T) {
	c := &clock{t: t0}
	key := []byte(strings.Repeat("k", 32))
	ns, err := NewNonces(key, time.Minute, c.now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewNonces([]byte(strings.Repeat("o", 32)), time.Minute, c.now)
	v := newVerifier(t, c, func(cfg *Config) { cfg.Nonces = ns })
	k := mustKey(t, "ec")
	proof := func(nonce string) string {
		p, _ := k.Proof(testMethod, testURL, ProofOptions{AccessToken: testToken, Nonce: nonce, Now: c.now()})
		return p
	}
	if err := verify(v, proof(""), request(k)); ReasonOf(err) != ReasonNonceMissing || ReasonNonceMissing.ErrorAttr() != ErrorUseNonce {
		t.Fatalf("no nonce: %v", err)
	}
	if err := verify(v, proof("made-up"), request(k)); ReasonOf(err) != ReasonNonceInvalid {
		t.Fatalf("made-up nonce: %v", err)
	}
	if err := verify(v, proof(other.Issue()), request(k)); ReasonOf(err) != ReasonNonceInvalid {
		t.Fatalf("another key's nonce: %v", err)
	}
	n := ns.Issue()
	if len(n) != 32 {
		t.Fatalf("nonce of %d characters", len(n))
	}
	if err := verify(v, proof(n), request(k)); err != nil {
		t.Fatalf("issued nonce: %v", err)
	}
	// another node with the same key accepts it
	ns2, _ := NewNonces(key, time.Minute, c.now)
	if !ns2.Valid(n) {
		t.Fatal("a nonce is not valid on another node with the same key")
	}
	c.add(time.Minute)
	if err := verify(v, proof(n), request(k)); ReasonOf(err) != ReasonNonceInvalid {
		t.Fatalf("expired nonce: %v", err)
	}
	future, _ := NewNonces(key, time.Minute, func() time.Time { return c.now().Add(time.Minute) })
	if ns.Valid(future.Issue()) {
		t.Fatal("a nonce from the future is valid")
	}
	if _, err := NewNonces(key[:31], 0, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("short key: %v", err)
	}
}

func TestConfigIsValidated(t *testing.T) {
	guard := &ReplayGuard{Local: NewLocalStore(10, nil)}
	for _, cfg := range []Config{
		{Replay: guard, Algorithms: []string{"none"}},
		{Replay: guard, Algorithms: []string{"HS256"}},
		{Replay: guard, Algorithms: []string{"ES384"}},
		{Replay: guard, Window: time.Hour},
		{Replay: guard, Window: time.Millisecond},
		{},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	v, err := New(Config{Replay: guard, Algorithms: []string{"ES256", "EdDSA"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Algorithms(); strings.Join(got, " ") != "ES256 EdDSA" {
		t.Fatalf("algorithms %v", got)
	}
	// an algorithm off the allowlist is refused
	c := &clock{t: t0}
	v = newVerifier(t, c, func(cfg *Config) { cfg.Algorithms = []string{"EdDSA"} })
	k := mustKey(t, "ec")
	p, _ := k.Proof(testMethod, testURL, ProofOptions{AccessToken: testToken, Now: t0})
	if err := verify(v, p, request(k)); ReasonOf(err) != ReasonAlgNotAllowed {
		t.Fatalf("ES256 off the allowlist: %v", err)
	}
}

func TestChallengesAndStatuses(t *testing.T) {
	if got := Challenge("edgeguard", ErrorInvalidProof, DefaultAlgorithms); got != `DPoP realm="edgeguard", error="invalid_dpop_proof", algs="ES256 PS256 RS256 EdDSA"` {
		t.Fatal(got)
	}
	if got := Challenge("edgeguard", "", nil); got != `DPoP realm="edgeguard"` {
		t.Fatal(got)
	}
	for _, r := range Reasons {
		want := 401
		if r == ReasonReplayUnavailable {
			want = 503
		}
		if r.Status() != want || !strings.HasPrefix(string(r), "dpop_") {
			t.Errorf("%s: status %d", r, r.Status())
		}
	}
	if ReasonDowngrade.ErrorAttr() != ErrorInvalidToken || ReasonReplayed.ErrorAttr() != ErrorInvalidProof {
		t.Fatal("error attributes")
	}
}

func TestKeysNeverPrintThemselves(t *testing.T) {
	k := mustKey(t, "ec")
	for _, s := range []string{k.String(), k.GoString()} {
		if !strings.Contains(s, k.Thumbprint()) || strings.Contains(s, "\"d\"") {
			t.Fatalf("%q", s)
		}
	}
	if _, err := NewKey(signer("rsa1024")); !errors.Is(err, ErrKey) {
		t.Fatal("RSA 1024 accepted")
	}
	if _, err := NewKey(signer("ec384")); !errors.Is(err, ErrKey) {
		t.Fatal("P-384 accepted")
	}
	if _, err := k.Proof("GET", "/relative", ProofOptions{}); err == nil {
		t.Fatal("relative htu accepted")
	}
}

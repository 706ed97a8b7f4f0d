package jwtauth

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func keyA() testKey { return testKey{kid: "rsa-a", signer: rsaA, use: "sig", alg: "RS256"} }

func TestValidTokensOfEveryAlgorithmVerify(t *testing.T) {
	testKeys(t)
	keys := []testKey{
		{kid: "rs", signer: rsaA},
		{kid: "ps", signer: rsaB, alg: "PS256"},
		{kid: "p256", signer: ecP256},
		{kid: "p384", signer: ecP384},
		{kid: "p521", signer: ecP521},
		{kid: "ed", signer: edKey},
	}
	p := newIdP(t, jwksJSON(t, keys...))
	v := newTestVerifier(t, p, newClock(), nil)
	cases := []struct{ alg, kid string }{
		{"RS256", "rs"}, {"RS384", "rs"}, {"RS512", "rs"},
		{"PS256", "ps"},
		{"ES256", "p256"}, {"ES384", "p384"}, {"ES512", "p521"},
		{"EdDSA", "ed"},
	}
	for _, tc := range cases {
		t.Run(tc.alg, func(t *testing.T) {
			k := keys[slices.IndexFunc(keys, func(k testKey) bool { return k.kid == tc.kid })]
			id, err := v.Verify(context.Background(), mint(t, tc.alg, k, nil, nil))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Subject != "5f0c-user" || id.AuthMethod != "jwt" {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestClaimsBecomeIdentity(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	v := newTestVerifier(t, p, newClock(), nil)
	tok := mint(t, "RS256", keyA(), nil, map[string]any{
		"realm_access":    map[string]any{"roles": []string{"user", "admin", "user"}},
		"resource_access": map[string]any{"jan-web": map[string]any{"roles": []string{"editor"}}, "empty": map[string]any{}},
		"scope":           "openid  profile",
	})
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "alice" || id.Email != "alice@example.com" || id.Issuer != testIssuer || id.ClientID != "jan-cli" {
		t.Errorf("identity %+v", id)
	}
	if !slices.Equal(id.RealmRoles, []string{"user", "admin"}) {
		t.Errorf("realm roles %v", id.RealmRoles)
	}
	if !slices.Equal(id.ClientRoles["jan-web"], []string{"editor"}) || len(id.ClientRoles) != 1 {
		t.Errorf("client roles %v", id.ClientRoles)
	}
	if !slices.Equal(id.Scopes, []string{"openid", "profile"}) {
		t.Errorf("scopes %v", id.Scopes)
	}
	if id.Guest {
		t.Error("not a guest")
	}
	if !id.ExpiresAt.Equal(testNow.Add(5 * time.Minute)) {
		t.Errorf("exp %v", id.ExpiresAt)
	}
}

// A DPoP-bound token (cnf.jkt, RFC 9449 §6.1) verifies as before and
// carries its binding in the identity — also from the cache: checking the
// proof is the caller's (the edge's JWT stage, pkg/dpop), on every request.
func TestBoundTokenCarriesItsThumbprint(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	v := newTestVerifier(t, p, newClock(), nil)
	jkt := "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	// Keycloak's bound tokens say typ DPoP
	tok := mint(t, "RS256", keyA(), nil, map[string]any{"cnf": map[string]any{"jkt": jkt}, "typ": "DPoP"})
	for i := range 2 { // a miss, then a hit
		id, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if id.Cnf == nil || id.Cnf.JKT != jkt {
			t.Fatalf("verification %d: cnf %+v", i, id.Cnf)
		}
	}
	id, err := v.Verify(context.Background(), mint(t, "RS256", keyA(), nil, nil))
	if err != nil || id.Cnf != nil {
		t.Fatalf("a bearer token has no binding: %+v %v", id, err)
	}
}

func TestGuestFromRoleOrClaim(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	v := newTestVerifier(t, p, newClock(), func(c *Config) { c.CacheEntries = -1 })
	for name, over := range map[string]map[string]any{
		"role":         {"realm_access": map[string]any{"roles": []string{"guest"}}},
		"bool claim":   {"guest": true},
		"string claim": {"guest": "true"},
	} {
		id, err := v.Verify(context.Background(), mint(t, "RS256", keyA(), nil, over))
		if err != nil || !id.Guest {
			t.Errorf("%s: guest=%v err=%v", name, id != nil && id.Guest, err)
		}
	}
	id, _ := v.Verify(context.Background(), mint(t, "RS256", keyA(), nil, map[string]any{"guest": "false"}))
	if id == nil || id.Guest {
		t.Error("guest=false must not be a guest")
	}
}

// TestEveryRejectionHasItsReason drives each reason code with a real attack
// or a real mistake.
func TestEveryRejectionHasItsReason(t *testing.T) {
	testKeys(t)
	ka := keyA()
	ec := testKey{kid: "ec", signer: ecP256}
	ed := testKey{kid: "ed", signer: edKey}
	p := newIdP(t, jwksJSON(t, ka, ec, ed, testKey{kid: "rs-any", signer: rsaB}))
	clk := newClock()
	v := newTestVerifier(t, p, clk, func(c *Config) { c.CacheEntries = -1 })

	good := mint(t, "RS256", ka, nil, nil)
	parts := strings.Split(good, ".")
	hdr := func(h map[string]any) string { return b64json(t, h) }
	payload := parts[1]
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaA.PublicKey)

	cases := []struct {
		name  string
		token string
		want  Reason
	}{
		{"too large", strings.Repeat("a", DefaultMaxTokenBytes+1), ReasonTooLarge},
		{"empty", "", ReasonMalformed},
		{"two parts", parts[0] + "." + parts[1], ReasonMalformed},
		{"four parts", good + ".x", ReasonMalformed},
		{"JWE five parts", "a.b.c.d.e", ReasonMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", ReasonMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], ReasonMalformed},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed},
		{"newline in payload", parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2], ReasonMalformed},
		{"space", " " + good, ReasonMalformed},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+", ReasonMalformed},
		{"non-canonical base64 trailing bits", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + flipLastBits(parts[2]), ReasonMalformed},
		{"header not JSON", enc.EncodeToString([]byte("not json")) + "." + payload + "." + parts[2], ReasonMalformed},
		{"header is array", enc.EncodeToString([]byte(`["RS256"]`)) + "." + payload + "." + parts[2], ReasonMalformed},
		{"duplicate alg", enc.EncodeToString([]byte(`{"alg":"none","alg":"RS256","kid":"rsa-a"}`)) + "." + payload + "." + parts[2], ReasonMalformed},
		{"alg not a string", hdr(map[string]any{"alg": 1, "kid": "rsa-a"}) + "." + payload + "." + parts[2], ReasonMalformed},
		{"no alg", hdr(map[string]any{"kid": "rsa-a"}) + "." + payload + "." + parts[2], ReasonMalformed},
		{"alg none", hdr(map[string]any{"alg": "none", "kid": "rsa-a"}) + "." + payload + ".AA", ReasonAlgNotAllowed},
		{"alg None", hdr(map[string]any{"alg": "None", "kid": "rsa-a"}) + "." + payload + ".AA", ReasonAlgNotAllowed},
		{"HS256 keyed with the RSA public key", hs256(hdr(map[string]any{"alg": "HS256", "kid": "rsa-a", "typ": "JWT"})+"."+payload, pubDER), ReasonAlgNotAllowed},
		{"jku injection", mint(t, "RS256", ka, map[string]any{"jku": "https://evil.example/jwks"}, nil), ReasonHeaderNotAllowed},
		{"x5u injection", mint(t, "RS256", ka, map[string]any{"x5u": "https://evil.example/cert"}, nil), ReasonHeaderNotAllowed},
		{"embedded jwk", mint(t, "RS256", ka, map[string]any{"jwk": map[string]any{"kty": "RSA"}}, nil), ReasonHeaderNotAllowed},
		{"x5c", mint(t, "RS256", ka, map[string]any{"x5c": []string{"MIIB"}}, nil), ReasonHeaderNotAllowed},
		{"crit", mint(t, "RS256", ka, map[string]any{"crit": []string{"exp"}, "exp": 1}, nil), ReasonHeaderNotAllowed},
		{"header typ JOSE", mint(t, "RS256", ka, map[string]any{"typ": "JOSE"}, nil), ReasonTokenType},
		{"no kid", mint(t, "RS256", ka, map[string]any{"kid": nil}, nil), ReasonUnknownKID},
		{"kid path traversal", mint(t, "RS256", testKey{kid: "../../../../etc/passwd", signer: rsaA}, nil, nil), ReasonUnknownKID},
		{"kid SQL", mint(t, "RS256", testKey{kid: "x' OR '1'='1", signer: rsaA}, nil, nil), ReasonUnknownKID},
		{"payload not JSON", parts[0] + "." + enc.EncodeToString([]byte("{")) + "." + parts[2], ReasonMalformed},
		{"payload array", parts[0] + "." + enc.EncodeToString([]byte("[]")) + "." + parts[2], ReasonMalformed},
		{"duplicate sub", parts[0] + "." + enc.EncodeToString([]byte(`{"sub":"a","sub":"b"}`)) + "." + parts[2], ReasonMalformed},
		{"exp as string", mint(t, "RS256", ka, nil, map[string]any{"exp": "9999999999"}), ReasonMalformed},
		{"iss not a string", mint(t, "RS256", ka, nil, map[string]any{"iss": 1}), ReasonMalformed},
		{"unknown issuer", mint(t, "RS256", ka, nil, map[string]any{"iss": "https://evil.example/realms/jan"}), ReasonIssuer},
		{"issuer with trailing slash", mint(t, "RS256", ka, nil, map[string]any{"iss": testIssuer + "/"}), ReasonIssuer},
		{"no iss", mint(t, "RS256", ka, nil, map[string]any{"iss": nil}), ReasonIssuer},
		{"no exp", mint(t, "RS256", ka, nil, map[string]any{"exp": nil}), ReasonClaimMissing},
		{"no sub", mint(t, "RS256", ka, nil, map[string]any{"sub": nil}), ReasonClaimMissing},
		{"expired beyond leeway", mint(t, "RS256", ka, nil, map[string]any{"exp": testNow.Add(-31 * time.Second).Unix()}), ReasonExpired},
		{"nbf in the future", mint(t, "RS256", ka, nil, map[string]any{"nbf": testNow.Add(time.Minute).Unix()}), ReasonNotYetValid},
		{"iat in the future", mint(t, "RS256", ka, nil, map[string]any{"iat": testNow.Add(time.Hour).Unix()}), ReasonNotYetValid},
		{"ID token", mint(t, "RS256", ka, nil, map[string]any{"typ": "ID"}), ReasonTokenType},
		{"refresh token", mint(t, "RS256", ka, nil, map[string]any{"typ": "Refresh"}), ReasonTokenType},
		{"wrong audience", mint(t, "RS256", ka, nil, map[string]any{"aud": "account"}), ReasonAudience},
		{"no audience", mint(t, "RS256", ka, nil, map[string]any{"aud": nil}), ReasonAudience},
		{"audience object", mint(t, "RS256", ka, nil, map[string]any{"aud": map[string]any{"jan-api": true}}), ReasonAudience},
		{"azp not allowed", mint(t, "RS256", ka, nil, map[string]any{"azp": "admin-cli"}), ReasonAZP},
		{"no azp", mint(t, "RS256", ka, nil, map[string]any{"azp": nil}), ReasonAZP},
		{"unknown kid", mint(t, "RS256", testKey{kid: "nope", signer: rsaA}, nil, nil), ReasonUnknownKID},
		{"ES256 alg on an RSA key", mint(t, "ES256", testKey{kid: "rsa-a", signer: ecP256}, nil, nil), ReasonKeyAlgMismatch},
		{"RS384 on a key declared RS256", mint(t, "RS384", ka, nil, nil), ReasonKeyAlgMismatch},
		{"RS256 on an EC key", mint(t, "RS256", testKey{kid: "ec", signer: rsaA}, nil, nil), ReasonKeyAlgMismatch},
		{"EdDSA on an RSA key", mint(t, "EdDSA", testKey{kid: "rs-any", signer: edKey}, nil, nil), ReasonKeyAlgMismatch},
		{"signed by another RSA key", mint(t, "RS256", testKey{kid: "rsa-a", signer: rsaB}, nil, nil), ReasonSignature},
		{"payload swapped", parts[0] + "." + mintParts(t, ka, map[string]any{"sub": "admin"})[1] + "." + parts[2], ReasonSignature},
		{"RSA signature one byte short", parts[0] + "." + parts[1] + "." + enc.EncodeToString(mustDecode(parts[2])[1:]), ReasonSignature},
		{"RSA signature one byte long", parts[0] + "." + parts[1] + "." + enc.EncodeToString(append(mustDecode(parts[2]), 0)), ReasonSignature},
		{"ECDSA signature of wrong length", truncSig(mint(t, "ES256", ec, nil, nil), 1), ReasonSignature},
		{"ECDSA DER signature", derSig(t, mint(t, "ES256", ec, nil, nil)), ReasonSignature},
		{"ECDSA zero signature", zeroSig(mint(t, "ES256", ec, nil, nil)), ReasonSignature},
		{"EdDSA signature of wrong length", truncSig(mint(t, "EdDSA", ed, nil, nil), 1), ReasonSignature},
		{"cnf bound to an mTLS certificate", mint(t, "RS256", ka, nil, map[string]any{"cnf": map[string]any{"x5t#S256": strings.Repeat("A", 43)}}), ReasonConfirmation},
		{"cnf with jkt and another method", mint(t, "RS256", ka, nil, map[string]any{"cnf": map[string]any{"jkt": strings.Repeat("A", 43), "jwk": map[string]any{"kty": "EC"}}}), ReasonConfirmation},
		{"cnf.jkt not a thumbprint", mint(t, "RS256", ka, nil, map[string]any{"cnf": map[string]any{"jkt": "short"}}), ReasonConfirmation},
		{"cnf.jkt not base64url", mint(t, "RS256", ka, nil, map[string]any{"cnf": map[string]any{"jkt": strings.Repeat("+", 43)}}), ReasonConfirmation},
		{"cnf empty", mint(t, "RS256", ka, nil, map[string]any{"cnf": map[string]any{}}), ReasonConfirmation},
		{"cnf a string", mint(t, "RS256", ka, nil, map[string]any{"cnf": "jkt"}), ReasonMalformed},
		{"typ DPoP without cnf", mint(t, "RS256", ka, nil, map[string]any{"typ": "DPoP"}), ReasonTokenType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.token)
			if id != nil {
				t.Fatalf("accepted: %+v", id)
			}
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("reason %q, want %q (err %v)", got, tc.want, err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatal("errors.Is must match the reason")
			}
			if tc.token != "" && len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[len(tc.token)-20:]) {
				t.Fatal("error text carries the token")
			}
		})
	}
	// The leeway accepts a token expired 29 s ago.
	if _, err := v.Verify(context.Background(), mint(t, "RS256", ka, nil, map[string]any{"exp": testNow.Add(-29 * time.Second).Unix()})); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	covered := map[Reason]bool{ReasonIdPUnavailable: true} // covered by the lifecycle tests
	for _, tc := range cases {
		covered[tc.want] = true
	}
	for _, r := range Reasons {
		if !covered[r] {
			t.Errorf("reason %s has no case", r)
		}
	}
}

func mintParts(t *testing.T, k testKey, claims map[string]any) []string {
	return strings.Split(mint(t, "RS256", k, nil, claims), ".")
}

func mustDecode(s string) []byte {
	b, err := enc.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func truncSig(tok string, n int) string {
	i := strings.LastIndexByte(tok, '.')
	sig := mustDecode(tok[i+1:])
	return tok[:i+1] + enc.EncodeToString(sig[:len(sig)-n])
}

func zeroSig(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	return tok[:i+1] + enc.EncodeToString(make([]byte, len(mustDecode(tok[i+1:]))))
}

// derSig re-encodes a raw r||s ECDSA signature as ASN.1 DER (what a naive
// signer produces; JWS requires the raw form).
func derSig(t *testing.T, tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig := mustDecode(tok[i+1:])
	der := []byte{0x30, byte(4 + len(sig)), 0x02, byte(len(sig) / 2)}
	der = append(der, sig[:len(sig)/2]...)
	der = append(der, 0x02, byte(len(sig)/2))
	der = append(der, sig[len(sig)/2:]...)
	return tok[:i+1] + enc.EncodeToString(der)
}

// flipLastBits re-encodes the last base64 character with non-zero padding
// bits (same bytes, different text: only a non-strict decoder accepts it).
func flipLastBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	c := strings.IndexByte(alphabet, s[len(s)-1])
	return string(alphabet[c|1])
}

func TestAlgorithmAllowlistIsEnforced(t *testing.T) {
	testKeys(t)
	ec := testKey{kid: "ec", signer: ecP256}
	p := newIdP(t, jwksJSON(t, keyA(), ec))
	v := newTestVerifier(t, p, newClock(), func(c *Config) { c.Algorithms = []string{"RS256"} })
	if _, err := v.Verify(context.Background(), mint(t, "ES256", ec, nil, nil)); ReasonOf(err) != ReasonAlgNotAllowed {
		t.Fatalf("ES256 outside the allowlist: %v", err)
	}
	if _, err := v.Verify(context.Background(), mint(t, "RS256", keyA(), nil, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := func() Config {
		return Config{Issuers: []Issuer{{Issuer: testIssuer}}, Audiences: []string{"jan-api"}}
	}
	cases := map[string]func(*Config){
		"no issuer":           func(c *Config) { c.Issuers = nil },
		"relative issuer":     func(c *Config) { c.Issuers[0].Issuer = "/realms/jan" },
		"issuer with query":   func(c *Config) { c.Issuers[0].Issuer = testIssuer + "?x=1" },
		"jwks with userinfo":  func(c *Config) { c.Issuers[0].JWKSURL = "https://u:p@idp/certs" },
		"duplicate issuer":    func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) },
		"no audience":         func(c *Config) { c.Audiences = nil },
		"empty audience":      func(c *Config) { c.Audiences = []string{""} },
		"alg none":            func(c *Config) { c.Algorithms = []string{"none"} },
		"HS256":               func(c *Config) { c.Algorithms = []string{"RS256", "HS256"} },
		"tiny max token":      func(c *Config) { c.MaxTokenBytes = 10 },
		"huge leeway":         func(c *Config) { c.Leeway = time.Hour },
		"refresh below min":   func(c *Config) { c.RefreshInterval, c.MinRefreshInterval = time.Second, time.Minute },
		"stale below refresh": func(c *Config) { c.MaxStale = time.Second },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok()
			mutate(&c)
			c.setDefaults()
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
	c := ok()
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestReasonStatus(t *testing.T) {
	for _, r := range Reasons {
		want := http.StatusUnauthorized
		if r == ReasonIdPUnavailable {
			want = http.StatusServiceUnavailable
		}
		if r.Status() != want {
			t.Errorf("%s status %d", r, r.Status())
		}
	}
}

package jwtauth

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/rs/zerolog"
)

func TestNewKidIsFetchedOnceAndRemovedKidStopsVerifying(t *testing.T) {
	testKeys(t)
	ka, kb := keyA(), testKey{kid: "rsa-b", signer: rsaB}
	p := newIdP(t, jwksJSON(t, ka))
	clk := newClock()
	v := newTestVerifier(t, p, clk, nil)
	ks := v.KeySet(testIssuer)
	ctx := context.Background()

	oldTok := mint(t, "RS256", ka, nil, nil)
	if _, err := v.Verify(ctx, oldTok); err != nil {
		t.Fatal(err)
	}
	fetches := ks.Fetches()

	// Rotation: Keycloak publishes key B and signs with it.
	p.set(jwksJSON(t, ka, kb), http.StatusOK)
	clk.Advance(DefaultMinRefreshInterval)
	newTok := mint(t, "RS256", kb, nil, nil)
	for range 5 {
		if _, err := v.Verify(ctx, newTok); err != nil {
			t.Fatalf("new kid: %v", err)
		}
	}
	if got := ks.Fetches() - fetches; got != 1 {
		t.Fatalf("new kid caused %d fetches, want exactly 1", got)
	}
	// The old token is still a cache hit while A is published.
	if _, err := v.Verify(ctx, oldTok); err != nil {
		t.Fatal(err)
	}

	// Key A is retired: tokens it signed stop verifying, cached or not.
	p.set(jwksJSON(t, kb), http.StatusOK)
	clk.Advance(DefaultMinRefreshInterval)
	if err := ks.refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, oldTok); ReasonOf(err) != ReasonUnknownKID {
		t.Fatalf("token of a removed key: %v, want unknown_kid", err)
	}
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Fatal(err)
	}
}

// A key published just after an unknown-kid refresh must be found by the
// next allowed refresh, not one refresh interval (5 min) later: a kid is
// negative-cached only after a key set fetched after its first refusal
// lacked it. The attack: anyone watching the public key list sends an
// unknown kid as a rotation starts, and the new key was refused until the
// background refresh.
func TestKeyPublishedInsideTheMinRefreshIntervalIsAcceptedAtTheNextRefresh(t *testing.T) {
	for _, first := range []string{
		"rsa-b",    // the kid itself, presented before the IdP published it
		"random-x", // another unknown kid spends the refresh budget
	} {
		t.Run(first, func(t *testing.T) {
			testKeys(t)
			ka, kb := keyA(), testKey{kid: "rsa-b", signer: rsaB}
			p := newIdP(t, jwksJSON(t, ka))
			clk := newClock()
			v := newTestVerifier(t, p, clk, func(c *Config) { c.CacheEntries = -1 })
			ks := v.KeySet(testIssuer)
			ctx := context.Background()
			tokB := mint(t, "RS256", kb, nil, nil)
			verify := func(tok string) error { _, err := v.Verify(ctx, tok); return err }

			clk.Advance(DefaultMinRefreshInterval) // t=0: a refresh is allowed
			t0, base := clk.Now(), ks.Fetches()
			at := func(d time.Duration) { t.Helper(); clk.Advance(t0.Add(d).Sub(clk.Now())) }

			// t=0: an unknown kid → refresh (fetch #1), absent → unknown_kid.
			if err := verify(mint(t, "RS256", testKey{kid: first, signer: rsaB}, nil, nil)); ReasonOf(err) != ReasonUnknownKID {
				t.Fatalf("t=0: %v, want unknown_kid", err)
			}
			if got := ks.Fetches() - base; got != 1 {
				t.Fatalf("t=0: %d fetches, want 1", got)
			}
			// t=2s: the IdP publishes key B.
			at(2 * time.Second)
			p.set(jwksJSON(t, ka, kb), http.StatusOK)
			// t=5s: inside the min refresh interval: refused, no fetch.
			at(5 * time.Second)
			if err := verify(tokB); ReasonOf(err) != ReasonUnknownKID {
				t.Fatalf("t=5s: %v, want unknown_kid", err)
			}
			if got := ks.Fetches() - base; got != 1 {
				t.Fatalf("t=5s: %d fetches, want still 1", got)
			}
			// t=11.5s: a refresh is allowed again (fetch #2) and finds B.
			at(11500 * time.Millisecond)
			if err := verify(tokB); err != nil {
				t.Fatalf("t=11.5s: %v, want accepted", err)
			}
			if got := ks.Fetches() - base; got != 2 {
				t.Fatalf("t=11.5s: %d fetches, want 2", got)
			}
		})
	}
}

// A kid that a key set fetched after its first refusal did not contain is
// negative-cached for a refresh interval: no fetch for it, even when a
// refresh would be allowed; after that it may refresh again.
func TestKidAbsentFromARefreshAfterItsRefusalIsNegativeCached(t *testing.T) {
	cases := []struct {
		name string
		// second runs between the first refusal and the checks; it must
		// bring about a refresh that began after that refusal.
		second func(t *testing.T, clk *clock, ks *KeySet, verify func(kid string) error)
	}{
		{"its own next request refreshes", func(t *testing.T, clk *clock, ks *KeySet, verify func(string) error) {
			clk.Advance(DefaultMinRefreshInterval)
			n := ks.Fetches()
			if err := verify("ghost"); ReasonOf(err) != ReasonUnknownKID {
				t.Fatal(err)
			}
			if ks.Fetches() != n+1 {
				t.Fatal("the first allowed request after the refusal must refresh")
			}
		}},
		{"another kid's refresh", func(t *testing.T, clk *clock, ks *KeySet, verify func(string) error) {
			clk.Advance(DefaultMinRefreshInterval)
			n := ks.Fetches()
			if err := verify("other"); ReasonOf(err) != ReasonUnknownKID {
				t.Fatal(err)
			}
			if ks.Fetches() != n+1 {
				t.Fatal("other kid: no refresh")
			}
		}},
		{"the background refresh", func(t *testing.T, clk *clock, ks *KeySet, verify func(string) error) {
			clk.Advance(time.Second)
			if err := ks.refresh(context.Background(), true); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testKeys(t)
			p := newIdP(t, jwksJSON(t, keyA()))
			clk := newClock()
			v := newTestVerifier(t, p, clk, func(c *Config) { c.CacheEntries = -1 })
			ks := v.KeySet(testIssuer)
			verify := func(kid string) error {
				_, err := v.Verify(context.Background(), mint(t, "RS256", testKey{kid: kid, signer: rsaB}, nil, nil))
				return err
			}
			// First seen inside the min refresh interval (the start-up fetch
			// was just made): refused, no fetch.
			clk.Advance(time.Second)
			n := ks.Fetches()
			if err := verify("ghost"); ReasonOf(err) != ReasonUnknownKID {
				t.Fatal(err)
			}
			if ks.Fetches() != n {
				t.Fatal("inside the min refresh interval: fetched")
			}
			tc.second(t, clk, ks, verify)
			// Its next request, at once, is refused without a fetch.
			n = ks.Fetches()
			if err := verify("ghost"); ReasonOf(err) != ReasonUnknownKID {
				t.Fatal(err)
			}
			checked := clk.Now()

			// Negative-cached: refreshes are allowed, but not for it.
			for clk.Now().Before(checked.Add(DefaultRefreshInterval - DefaultMinRefreshInterval)) {
				clk.Advance(DefaultMinRefreshInterval)
				if err := verify("ghost"); ReasonOf(err) != ReasonUnknownKID {
					t.Fatal(err)
				}
			}
			if got := ks.Fetches() - n; got != 0 {
				t.Fatalf("negative-cached kid caused %d fetches", got)
			}
			// Past the negative TTL it is checked once more.
			clk.Advance(DefaultMinRefreshInterval + time.Second)
			if err := verify("ghost"); ReasonOf(err) != ReasonUnknownKID {
				t.Fatal(err)
			}
			if got := ks.Fetches() - n; got != 1 {
				t.Fatalf("after the negative TTL: %d fetches, want 1", got)
			}
		})
	}
}

func TestIdPDownServesStaleKeysThenIdPUnavailable(t *testing.T) {
	testKeys(t)
	var logs testenv.Buffer
	p := newIdP(t, jwksJSON(t, keyA()))
	clk := newClock()
	v := newTestVerifier(t, p, clk, func(c *Config) {
		c.CacheEntries = -1
		c.Logger = zerolog.New(&logs)
	})
	ks := v.KeySet(testIssuer)
	ctx := context.Background()
	p.set([]byte("boom"), http.StatusInternalServerError)

	// Within max_stale the last good keys keep verifying, refreshes fail.
	for i := range 20 {
		clk.Advance(time.Hour)
		_ = ks.refresh(ctx, true)
		tok := mint(t, "RS256", keyA(), nil, map[string]any{
			"exp": clk.Now().Add(time.Minute).Unix(), "iat": clk.Now().Unix(),
		})
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("hour %d: stale keys must still verify: %v", i+1, err)
		}
	}
	// Warnings: at most one per refresh interval, and here one per hour.
	if n := strings.Count(logs.String(), "jwks refresh failed"); n == 0 || n > 20 {
		t.Fatalf("%d warnings for 20 failed refreshes an hour apart", n)
	}
	clk.Advance(5 * time.Hour) // 25 h since the last good fetch
	tok := mint(t, "RS256", keyA(), nil, map[string]any{"exp": clk.Now().Add(time.Minute).Unix(), "iat": clk.Now().Unix()})
	if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonIdPUnavailable {
		t.Fatalf("beyond max_stale: %v, want idp_unavailable", err)
	}
	// The IdP comes back: the next allowed refresh restores service.
	p.set(jwksJSON(t, keyA()), http.StatusOK)
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestWarningsAreRateLimitedPerRefreshInterval(t *testing.T) {
	testKeys(t)
	var logs testenv.Buffer
	p := newIdP(t, jwksJSON(t, keyA()))
	clk := newClock()
	v := newTestVerifier(t, p, clk, func(c *Config) { c.Logger = zerolog.New(&logs) })
	p.set(nil, http.StatusBadGateway)
	for range 30 { // 30 failures 10 s apart = 5 minutes = one refresh interval
		clk.Advance(10 * time.Second)
		_ = v.KeySet(testIssuer).refresh(context.Background(), true)
	}
	if n := strings.Count(logs.String(), "jwks refresh failed"); n != 1 {
		t.Fatalf("%d warnings within one refresh interval, want 1", n)
	}
}

func TestRandomKidFloodFetchesAtMostOncePerMinRefreshInterval(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	clk := newClock()
	v := newTestVerifier(t, p, clk, func(c *Config) { c.CacheEntries = -1 })
	ks := v.KeySet(testIssuer)
	start := ks.Fetches()
	ctx := context.Background()

	// Ten kids an attacker presents over and over, next to the random ones.
	longLived := map[string]any{"exp": testNow.Add(time.Hour).Unix()}
	repeated := make([]string, 10)
	for i := range repeated {
		repeated[i] = mint(t, "RS256", testKey{kid: fmt.Sprintf("rep-%d", i), signer: rsaA}, nil, longLived)
	}
	// 60 simulated seconds, 50 concurrent attackers each second: 40 with
	// random kids, 10 with the repeated ones.
	for sec := 0; sec < 60; sec++ {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := ""
				if i < len(repeated) {
					tok = repeated[i]
				} else {
					tok = mint(t, "RS256", testKey{kid: fmt.Sprintf("rand-%d-%d", sec, i), signer: rsaA}, nil, nil)
				}
				if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonUnknownKID {
					t.Errorf("unknown kid: %v", err)
				}
			}()
		}
		wg.Wait()
		clk.Advance(time.Second)
	}
	got := ks.Fetches() - start
	if max := int64(60/int(DefaultMinRefreshInterval.Seconds())) + 1; got > max {
		t.Fatalf("%d JWKS fetches in 60 s of random kids, want <= %d", got, max)
	}
	if got == 0 {
		t.Fatal("an unknown kid must trigger a refresh when one is allowed")
	}
	// The repeated kids were absent from refreshes made after their first
	// refusal: negative-cached, they cost no fetch for the rest of their
	// negative period. The flood's 2,400 random kids overflowed the
	// 1,024-entry cache, which can forget a kid's state (as before): such a
	// kid is refused and earns its negative entry again by the next
	// allowed refresh, so the first 3 intervals may still cost up to 2
	// fetches (each within the min refresh interval), and then none.
	presentRepeated := func() {
		t.Helper()
		clk.Advance(DefaultMinRefreshInterval)
		for _, tok := range repeated {
			if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonUnknownKID {
				t.Fatalf("repeated kid: %v", err)
			}
		}
	}
	before := ks.Fetches()
	for range 3 {
		presentRepeated()
	}
	if n := ks.Fetches() - before; n > 2 {
		t.Fatalf("repeated kids after the flood: %d fetches in 3 intervals, want <= 2", n)
	}
	before = ks.Fetches()
	for clk.Now().Before(testNow.Add(DefaultRefreshInterval)) {
		presentRepeated()
	}
	if n := ks.Fetches() - before; n != 0 {
		t.Fatalf("negative-cached repeated kids caused %d fetches", n)
	}
	// An unknown kid refused once and then absent from a key set fetched
	// after that refusal is answered from the negative cache, even when a
	// refresh would be allowed.
	tok := mint(t, "RS256", testKey{kid: "seen-before", signer: rsaA}, nil, longLived)
	for range 2 {
		clk.Advance(DefaultMinRefreshInterval)
		_, _ = v.Verify(ctx, tok)
	}
	before = ks.Fetches()
	for range 3 {
		clk.Advance(DefaultMinRefreshInterval)
		if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonUnknownKID {
			t.Fatal(err)
		}
	}
	if ks.Fetches() != before {
		t.Fatal("a recently unknown kid must not trigger another fetch")
	}
}

func TestStartupWithoutIdPAnswersIdPUnavailableWithoutBlocking(t *testing.T) {
	testKeys(t)
	p := newIdP(t, nil)
	p.set(nil, http.StatusServiceUnavailable)
	clk := newClock()
	v, err := New(Config{
		Issuers:   []Issuer{{Issuer: testIssuer, JWKSURL: p.url()}},
		Audiences: []string{"jan-api"},
		Now:       clk.Now,
		Logger:    zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok := mint(t, "RS256", keyA(), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := v.Verify(ctx, tok); ReasonOf(err) != ReasonIdPUnavailable {
		t.Fatalf("before the first fetch: %v", err)
	}
	if v.Ready() {
		t.Fatal("not ready without keys")
	}
	p.set(jwksJSON(t, keyA()), http.StatusOK)
	clk.Advance(DefaultMinRefreshInterval)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after the IdP came up: %v", err)
	}
}

func TestHangingIdPIsBoundedByFetchTimeout(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	p.hang = make(chan struct{})
	defer close(p.hang)
	v, err := New(Config{
		Issuers:      []Issuer{{Issuer: testIssuer, JWKSURL: p.url()}},
		Audiences:    []string{"jan-api"},
		FetchTimeout: 200 * time.Millisecond,
		Logger:       zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	start := time.Now()
	_, err = v.Verify(context.Background(), mint(t, "RS256", keyA(), nil, map[string]any{"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix()}))
	if ReasonOf(err) != ReasonIdPUnavailable {
		t.Fatalf("hanging IdP: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("verification blocked %s", d)
	}
}

func TestDiscovery(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	// The issuer is the IdP server itself, so discovery finds /certs.
	p.issuer = p.srv.URL
	clk := newClock()
	v := newTestVerifier(t, p, clk, func(c *Config) {
		c.Issuers = []Issuer{{Issuer: p.srv.URL}}
	})
	tok := mint(t, "RS256", keyA(), nil, map[string]any{"iss": p.srv.URL})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}

	// A discovery document naming another issuer is refused.
	q := newIdP(t, jwksJSON(t, keyA()))
	q.issuer = "https://evil.example"
	ks := newKeySet(q.srv.URL, "", keySetConfig{refresh: time.Minute, minRefresh: time.Second, maxStale: time.Hour, fetchTimeout: time.Second, client: http.DefaultClient, now: time.Now, log: zerolog.Nop()})
	err := ks.fetchOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("issuer mismatch in discovery: %v", err)
	}
}

func TestJWKSParsingSkipsKeysThatCannotVerify(t *testing.T) {
	testKeys(t)
	doc := jwksJSON(t,
		testKey{kid: "sig", signer: rsaA, use: "sig"},
		testKey{kid: "enc", signer: rsaB, use: "enc", alg: "RSA-OAEP"},
		testKey{kid: "dup", signer: ecP256},
		testKey{kid: "dup", signer: ecP384},
		testKey{kid: "lying-alg", signer: ecP256, alg: "RS256"},
	)
	// Append a symmetric key by hand: jwx renders it as kty oct.
	// jwx refuses to render an RSA key under 2048 bits, so that one is by hand.
	small := fmt.Sprintf(`{"kty":"RSA","kid":"small","n":%q,"e":"AQAB"},`, enc.EncodeToString(rsaSmall.N.Bytes()))
	doc = bytes.Replace(doc, []byte(`"keys":[`), []byte(`"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},`+small), 1)
	keys, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if keys.Len() != 1 || keys.keys["sig"] == nil {
		t.Fatalf("usable keys: %v", keys.keys)
	}
	for _, bad := range []string{``, `{}`, `{"keys":[]}`, `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`, `[]`, `{"keys":"x"}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS(%q) accepted", bad)
		}
	}
}

func TestStaticKeysVerifySignatureOnly(t *testing.T) {
	testKeys(t)
	keys, err := ParseJWKS(jwksJSON(t, keyA()))
	if err != nil {
		t.Fatal(err)
	}
	expired := mint(t, "RS256", keyA(), nil, map[string]any{"exp": 1})
	info, r := keys.VerifySignature(expired, nil)
	if r != "" || info.KID != "rsa-a" || info.Alg != "RS256" {
		t.Fatalf("signature only: %+v %q", info, r)
	}
	if _, r := keys.VerifySignature(expired, []string{"ES256"}); r != ReasonAlgNotAllowed {
		t.Fatalf("alg outside list: %q", r)
	}
	if _, r := keys.VerifySignature(expired, []string{"HS256"}); r != ReasonAlgNotAllowed {
		t.Fatalf("HS256 requested: %q", r)
	}
	if _, r := keys.VerifySignature("garbage", nil); r != ReasonMalformed {
		t.Fatalf("garbage: %q", r)
	}
}

// RFC 7515 allows a JWS over zero bytes ("header..signature"): the
// signature-only check accepts one whose signature verifies and refuses it
// tampered, unsigned or signed over something else; an access token
// (Verify) still needs claims, so there it stays malformed.
func TestEmptyPayloadIsASignatureButNeverAnAccessToken(t *testing.T) {
	testKeys(t)
	ka, ec, ed := keyA(), testKey{kid: "ec", signer: ecP256}, testKey{kid: "ed", signer: edKey}
	keys, err := ParseJWKS(jwksJSON(t, ka, ec, ed))
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(alg, kid string) string { return b64json(t, map[string]any{"alg": alg, "typ": "JWT", "kid": kid}) }
	rs := signRaw(t, "RS256", rsaA, hdr("RS256", "rsa-a")+".")
	es := signRaw(t, "ES256", ecP256, hdr("ES256", "ec")+".")
	eds := signRaw(t, "EdDSA", edKey, hdr("EdDSA", "ed")+".")
	withClaims := strings.Split(mint(t, "RS256", ka, nil, nil), ".")
	flip := func(tok string) string {
		p := strings.Split(tok, ".")
		sig := mustDecode(p[2])
		sig[len(sig)/2] ^= 1
		return p[0] + ".." + enc.EncodeToString(sig)
	}
	for _, tc := range []struct {
		name, token string
		want        Reason
		alg, kid    string
	}{
		{"RS256 over zero bytes", rs, "", "RS256", "rsa-a"},
		{"ES256 over zero bytes", es, "", "ES256", "ec"},
		{"EdDSA over zero bytes", eds, "", "EdDSA", "ed"},
		{"tampered RS256 signature", flip(rs), ReasonSignature, "RS256", "rsa-a"},
		{"tampered ES256 signature", flip(es), ReasonSignature, "ES256", "ec"},
		{"tampered EdDSA signature", flip(eds), ReasonSignature, "EdDSA", "ed"},
		{"claims dropped from a signed token", withClaims[0] + ".." + withClaims[2], ReasonSignature, "RS256", "rsa-a"},
		{"claims added to a signature over zero bytes", strings.Replace(rs, "..", "."+withClaims[1]+".", 1), ReasonSignature, "RS256", "rsa-a"},
		{"no signature", hdr("RS256", "rsa-a") + "..", ReasonMalformed, "", ""},
		{"alg none, no signature", b64json(t, map[string]any{"alg": "none", "kid": "rsa-a"}) + "..", ReasonMalformed, "", ""},
		{"alg none", b64json(t, map[string]any{"alg": "none", "kid": "rsa-a"}) + "..AA", ReasonAlgNotAllowed, "", "rsa-a"},
		{"no header", ".." + strings.Split(rs, "..")[1], ReasonMalformed, "", ""},
		{"unknown kid", signRaw(t, "RS256", rsaA, hdr("RS256", "other")+"."), ReasonUnknownKID, "RS256", "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, r := keys.VerifySignature(tc.token, nil)
			if r != tc.want || info.Alg != tc.alg || info.KID != tc.kid {
				t.Fatalf("VerifySignature: %+v %q, want %q (alg %q, kid %q)", info, string(r), string(tc.want), tc.alg, tc.kid)
			}
		})
	}
	v, err := New(Config{Issuers: []Issuer{{Issuer: testIssuer, Keys: keys}}, Audiences: []string{"jan-api"},
		Now: newClock().Now, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, tok := range []string{rs, es, eds} {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ReasonMalformed) {
			t.Fatalf("access token without a payload: %v, want %s", err, ReasonMalformed)
		}
	}
}

func TestPrivateJWKsAreReducedToTheirPublicHalf(t *testing.T) {
	testKeys(t)
	for name, priv := range map[string]any{"rsa": rsaA, "ec": ecP256, "ed25519": edKey} {
		jk, err := jwk.Import(priv)
		if err != nil {
			t.Fatal(err)
		}
		_ = jk.Set(jwk.KeyIDKey, "k")
		doc, _ := json.Marshal(map[string]any{"keys": []any{jk}})
		keys, err := ParseJWKS(doc)
		if err != nil || keys.Len() != 1 {
			t.Fatalf("%s: %v", name, err)
		}
		alg := map[string]string{"rsa": "RS256", "ec": "ES256", "ed25519": "EdDSA"}[name]
		tok := mint(t, alg, testKey{kid: "k", signer: priv.(crypto.Signer)}, nil, nil)
		if _, r := keys.VerifySignature(tok, nil); r != "" {
			t.Fatalf("%s: %s", name, r)
		}
	}
}

package jwtauth

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestTokenForOneAudienceIsNeverAHitForAnother(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	clk := newClock()
	base := Config{
		Issuers: []Issuer{{Issuer: testIssuer, JWKSURL: p.url()}},
		Now:     clk.Now,
		Logger:  zerolog.Nop(),
	}
	cfgAPI, cfgMedia := base, base
	cfgAPI.Audiences = []string{"jan-api"}
	cfgMedia.Audiences = []string{"media-api"}
	api, err := Shared(cfgAPI)
	if err != nil {
		t.Fatal(err)
	}
	media, err := Shared(cfgMedia)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, api)
	if api.KeySet(testIssuer) != media.KeySet(testIssuer) {
		t.Fatal("verifiers of one issuer must share the key set")
	}
	again, _ := Shared(cfgAPI)
	if again != api {
		t.Fatal("the same configuration must give the same verifier")
	}
	tok := mint(t, "RS256", keyA(), nil, nil) // aud jan-api
	if _, err := api.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := media.Verify(context.Background(), tok); ReasonOf(err) != ReasonAudience {
		t.Fatalf("cached on jan-api, presented to media-api: %v", err)
	}
}

func TestCacheEntryLivesUntilExpNeverLonger(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	clk := newClock()
	v := newTestVerifier(t, p, clk, nil)
	exp := testNow.Add(time.Minute)
	tok := mint(t, "RS256", keyA(), nil, map[string]any{"exp": exp.Unix()})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if v.cache.get(tok, clk.Now().UnixNano()) == nil {
		t.Fatal("verified token not cached")
	}
	clk.Advance(time.Minute) // now == exp
	if v.cache.get(tok, clk.Now().UnixNano()) != nil {
		t.Fatal("a cache entry outlived the token's exp")
	}
	// Within the leeway the full path still accepts it (and says so).
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	clk.Advance(DefaultLeeway)
	if _, err := v.Verify(context.Background(), tok); ReasonOf(err) != ReasonExpired {
		t.Fatalf("after exp+leeway: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	v := newTestVerifier(t, p, newClock(), func(c *Config) { c.CacheEntries = 50 })
	for i := range 200 {
		tok := mint(t, "RS256", keyA(), nil, map[string]any{"sub": fmt.Sprint("user-", i)})
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.len(); n > 50 {
		t.Fatalf("cache holds %d entries, bound is 50", n)
	}
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	v := newTestVerifier(t, p, newClock(), nil)
	tok := mint(t, "RS256", keyA(), nil, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(ctx, tok) }); n != 0 {
		t.Fatalf("cache hit allocates %.1f times", n)
	}
	// Rejections before JSON parsing do not allocate either (a Reason is a
	// constant); invalid JSON does, inside fastjson's error text.
	bad := "!" + tok
	if raceDetector {
		t.Log("-race: sync.Pool drops scratch buffers at random; the rejection's count is asserted in the run without -race")
		return
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(ctx, bad) }); n != 0 {
		t.Fatalf("malformed rejection allocates %.1f times", n)
	}
}

func TestConcurrentVerificationIsRaceFree(t *testing.T) {
	testKeys(t)
	p := newIdP(t, jwksJSON(t, keyA()))
	clk := newClock()
	v := newTestVerifier(t, p, clk, func(c *Config) { c.CacheEntries = 20 })
	toks := make([]string, 40)
	for i := range toks {
		toks[i] = mint(t, "RS256", keyA(), nil, map[string]any{"sub": fmt.Sprint("u", i)})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if _, err := v.Verify(context.Background(), toks[(g*7+i)%len(toks)]); err != nil {
					t.Error(err)
					return
				}
				if i%25 == 0 {
					_ = v.KeySet(testIssuer).refresh(context.Background(), true)
				}
			}
		}()
	}
	wg.Wait()
}

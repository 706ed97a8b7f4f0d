package apikey

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/rs/zerolog"
)

// TestDebugLogsNeverCarryAKeyAPepperOrTheInternalToken runs every path of
// the validator with logging at debug level (and logs the package's types
// the way callers would), then greps the captured logs for every secret the
// test used, raw and in the usual encodings.
func TestDebugLogsNeverCarryAKeyAPepperOrTheInternalToken(t *testing.T) {
	var buf testenv.Buffer
	logger := zerolog.New(&buf).Level(zerolog.DebugLevel)
	f := newFakeLLM(t)
	clock := newFakeClock()
	var secrets []string
	gen := func() Key {
		k := mustGenerate(t, EnvLive)
		secrets = append(secrets, k.Secret(), k.Secret()[int(k.off)+KIDLen:])
		return k
	}
	mutate := func(c *Config) {
		c.Logger = &logger
		c.FailureLimit = ratelimit.Limit{Rate: 5, Period: time.Minute}
		c.MaxInFlight = 2
		if addr := os.Getenv("EDGEGUARD_TEST_REDIS_ADDR"); addr != "" {
			c.Redis, c.RedisKeyPrefix, c.RedisTimeout = redisClient(t, addr), uniquePrefix(), time.Second
		}
	}
	v := newTestValidator(t, f, clock, mutate)
	if v.rdb != nil {
		waitSubscribed(t, v)
	}
	ctx := WithRequestID(context.Background(), "req-42")

	good := gen()
	f.add(good, fakeKey{subject: "alice", roles: []string{"user"}})
	revoked := gen()
	f.add(revoked, fakeKey{reason: ReasonRevoked})
	_, _ = v.Validate(ctx, clientA, good)           // valid, from the validator
	_, _ = v.Validate(ctx, clientA, good)           // hit
	_, _ = v.Validate(ctx, clientA, revoked)        // rejection
	_, _ = v.Validate(ctx, clientA, revoked)        // negative hit
	_, _ = v.Validate(ctx, clientA, forge(t, good)) // forged id
	for range 6 {                                   // failure limit
		_, _ = v.Validate(ctx, clientA, gen())
	}
	release := f.hold() // busy
	var wg sync.WaitGroup
	for i := range 4 {
		k := gen()
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = v.Validate(ctx, fmt.Sprintf("198.51.100.%d", i), k) }()
	}
	eventually(2*time.Second, func() bool { return v.Stats().Busy >= 2 })
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	release()
	wg.Wait()
	f.setStatus(http.StatusServiceUnavailable) // outage: stale and unavailable
	clock.Advance(2 * time.Minute)
	_, _ = v.Validate(ctx, clientA, good)
	_, _ = v.Validate(ctx, "192.0.2.1", gen())
	v.Revoke(good.KID())
	if v.rdb != nil {
		_ = PublishRevocation(ctx, v.rdb, good.KID())
	}
	f.srv.Close() // unreachable
	clock.Advance(time.Minute)
	_, _ = v.Validate(ctx, "192.0.2.2", gen())

	// A validator with the wrong token (internal_auth_failed is logged).
	wrong := newTestValidator(t, newFakeLLM(t), clock, func(c *Config) {
		mutate(c)
		c.InternalToken = []byte("wrong-internal-token-value-123456")
	})
	secrets = append(secrets, "wrong-internal-token-value-123456")
	_, _ = wrong.Validate(ctx, "192.0.2.3", gen())

	// Callers log keys, configs and peppers.
	pep := []byte("pepper-secret-abcdefghijklmnopqrstuvwxyz-0123")
	ps, err := NewPeppers(Pepper{ID: "p1", Secret: pep})
	if err != nil {
		t.Fatal(err)
	}
	k := gen()
	logger.Debug().Object("key", k).Interface("key_json", k).Stringer("key_str", k).
		Object("config", v.cfg).Interface("config_json", v.cfg).Object("peppers", ps).
		Interface("peppers_json", ps).Str("fmt", fmt.Sprintf("%+v %#v %v", k, v.cfg, ps)).Msg("caller")
	_, err = Parse(k.Secret()[:20] + "!" + k.Secret()[21:])
	logger.Debug().Err(err).Msg("parse error")
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	logs := buf.String()
	secrets = append(secrets, string(testToken), string(pep))
	for _, s := range secrets {
		for _, enc := range []string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(logs, enc) {
				t.Fatalf("logs carry a secret (%.12s…)", s)
			}
		}
	}
	for _, want := range []string{`"result":"valid"`, `"result":"key_revoked"`, `"result":"too_many_auth_failures"`,
		`"source":"stale"`, `"reason":"internal_auth_failed"`, `"reason":"key_revoked"`, good.KID()} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s (the test did not exercise that path)", want)
		}
	}
	if t.Failed() {
		t.Log(logs)
	}
}

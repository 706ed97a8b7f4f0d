package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/pkg/svcauth"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

const internalToken = "app-test-internal-token-0123456789abcdef"

func redisAddr(t testing.TB) string {
	t.Helper()
	a := os.Getenv("EDGEGUARD_TEST_REDIS_ADDR")
	if a == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEGUARD_TEST_REDIS_ADDR is not set under CI=true")
		}
		t.Skip("EDGEGUARD_TEST_REDIS_ADDR not set: run `make test`")
	}
	return a
}

type env struct {
	app      *app.App
	idp      *jwttest.IdP
	roles    *keystest.Roles
	public   *httptest.Server
	internal *httptest.Server
	cfg      *config.Config
}

func testConfig(t testing.TB, idp *jwttest.IdP, dsn, redisAddr string) *config.Config {
	return &config.Config{
		Service:     envconf.Service{Strict: true, ListenAddr: "127.0.0.1:0", InternalListenAddr: "127.0.0.1:0", LogLevel: zerolog.DebugLevel},
		DatabaseURL: config.Secret(dsn), RedisAddr: redisAddr,
		KeycloakURL: "http://127.0.0.1:1", KeycloakRealm: "jan", KeycloakClientID: "llm-api", KeycloakClientSecret: config.Secret("unused-in-tests"),
		KeycloakCacheTTL: time.Second,
		Auth: svcauth.Config{Enabled: true, Issuer: idp.Issuer, JWKSURL: idp.JWKSURL(), Audience: []string{"jan-api"},
			AllowedAZP: []string{"jan-cli"}, AcceptJWT: true, ServiceName: "llm-api"},
		Pepper: config.Secret("app-test-pepper-0123456789abcdef0123456789"), InternalToken: secrets.Static([]byte(internalToken)),
		MaxKeysPerUser: 10, DefaultExpiresDays: 90, MaxExpiresDays: 365, KeyEnv: "live",
	}
}

func start(t *testing.T, logs io.Writer) *env {
	t.Helper()
	e := &env{idp: jwttest.New(t), roles: keystest.NewRoles()}
	e.roles.Set(keys.Owner{Subject: "alice", Username: "alice", Enabled: true, RealmRoles: []string{"user"}})
	e.cfg = testConfig(t, e.idp, pgtest.Schema(t), redisAddr(t))
	if logs == nil {
		logs = io.Discard
	}
	a, err := app.New(context.Background(), e.cfg, zerolog.New(logs).Level(zerolog.DebugLevel),
		app.Deps{Roles: e.roles, SweepInterval: 50 * time.Millisecond, UsageInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	e.app = a
	ctx, cancel := context.WithCancel(context.Background())
	wg := a.Background(ctx)
	t.Cleanup(func() { cancel(); wg.Wait() })
	e.public = httptest.NewServer(a.Public)
	e.internal = httptest.NewServer(a.Internal)
	t.Cleanup(e.public.Close)
	t.Cleanup(e.internal.Close)
	return e
}

func call(t testing.TB, method, url string, header map[string]string, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) bearer(t testing.TB) map[string]string {
	return map[string]string{"Authorization": "Bearer " + e.idp.Token(t, "alice", nil)}
}

func (e *env) validate(t testing.TB, key string) (int, []byte) {
	return call(t, http.MethodPost, e.internal.URL+"/internal/api-keys/validate",
		map[string]string{"X-Internal-Token": internalToken}, `{"key":"`+key+`"}`)
}

type keyAnswer struct {
	ID, KID, Key string
}

func (e *env) create(t testing.TB, name string) keyAnswer {
	t.Helper()
	st, b := call(t, http.MethodPost, e.public.URL+"/auth/api-keys", e.bearer(t), `{"name":"`+name+`"}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var k keyAnswer
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

type revocation struct {
	KeyID string `json:"key_id"`
	At    string `json:"at"`
}

func subscribe(t *testing.T, addr string) <-chan revocation {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	sub := rdb.Subscribe(context.Background(), apikey.RevocationChannel)
	if _, err := sub.Receive(context.Background()); err != nil { // subscription confirmed
		t.Fatal(err)
	}
	out := make(chan revocation, 16)
	go func() {
		for m := range sub.Channel() {
			var r revocation
			if json.Unmarshal([]byte(m.Payload), &r) == nil {
				out <- r
			}
		}
	}()
	t.Cleanup(func() { _ = sub.Close() })
	return out
}

func expectRevocation(t *testing.T, ch <-chan revocation, kid string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case r := <-ch:
			if r.KeyID == kid {
				if _, err := time.Parse(time.RFC3339, r.At); err != nil {
					t.Fatalf("at %q is not RFC 3339", r.At)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no revocation of %s on %s within %s", kid, apikey.RevocationChannel, within)
		}
	}
}

// TestKeyLifecycleOnPostgresAndRedis runs the service against real
// PostgreSQL and Redis: create, validate, revoke (announced on the Redis
// channel), rotate with grace (announced when the grace ends).
func TestKeyLifecycleOnPostgresAndRedis(t *testing.T) {
	e := start(t, nil)
	revoked := subscribe(t, e.cfg.RedisAddr)

	k := e.create(t, "ci")
	if st, b := e.validate(t, k.Key); st != 200 || !bytes.Contains(b, []byte(`"key_id":"`+k.KID+`"`)) {
		t.Fatalf("validate: %d %s", st, b)
	}
	if st, b := call(t, http.MethodDelete, e.public.URL+"/auth/api-keys/"+k.ID, e.bearer(t), ""); st != 204 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	expectRevocation(t, revoked, k.KID, time.Second)
	if st, b := e.validate(t, k.Key); st != 401 || !bytes.Contains(b, []byte("key_revoked")) {
		t.Fatalf("validate revoked: %d %s", st, b)
	}

	k2 := e.create(t, "svc")
	st, b := call(t, http.MethodPost, e.public.URL+"/auth/api-keys/"+k2.ID+"/rotate", e.bearer(t), `{"grace_seconds":1}`)
	if st != 201 {
		t.Fatalf("rotate: %d %s", st, b)
	}
	var k3 keyAnswer
	_ = json.Unmarshal(b, &k3)
	if st, _ := e.validate(t, k2.Key); st != 200 {
		t.Fatalf("old key in grace: %d", st)
	}
	expectRevocation(t, revoked, k2.KID, 3*time.Second)
	if st, b := e.validate(t, k2.Key); st != 401 || !bytes.Contains(b, []byte("key_revoked")) {
		t.Fatalf("old key after grace: %d %s", st, b)
	}
	if st, _ := e.validate(t, k3.Key); st != 200 {
		t.Fatalf("new key: %d", st)
	}

	// last use reaches PostgreSQL in a batch
	if err := e.app.Usage.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, b = call(t, http.MethodGet, e.public.URL+"/auth/api-keys", e.bearer(t), "")
	if !bytes.Contains(b, []byte(`"last_used_at":"20`)) {
		t.Fatalf("no last_used_at after flush: %s", b)
	}
	if bytes.Contains(b, []byte(k3.Key)) {
		t.Fatal("list shows a secret")
	}

	// health and readiness on the internal listener only
	if st, _ := call(t, http.MethodGet, e.internal.URL+"/readyz", nil, ""); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	if st, _ := call(t, http.MethodGet, e.public.URL+"/readyz", nil, ""); st != 404 {
		t.Fatalf("readyz on the public listener: %d", st)
	}
}

func TestStartingTwiceOnOneDatabaseMigratesOnce(t *testing.T) {
	idp := jwttest.New(t)
	cfg := testConfig(t, idp, pgtest.Schema(t), "")
	cfg.Strict = false
	for range 2 {
		a, err := app.New(context.Background(), cfg, zerolog.Nop(), app.Deps{Roles: keystest.NewRoles()})
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
	}
}

func TestRunServesBothListenersAndStops(t *testing.T) {
	idp := jwttest.New(t)
	cfg := testConfig(t, idp, pgtest.Schema(t), "")
	cfg.ListenAddr, cfg.InternalListenAddr = freeAddr(t), freeAddr(t)
	pki := mtlstest.New(t, "test CA")
	cfg.TLS = mtlstest.Settings(t, pki, pki, "llm-api")
	a, err := app.New(context.Background(), cfg, zerolog.Nop(), app.Deps{Roles: keystest.NewRoles()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var st int
	for range 50 {
		resp, err := http.Get("http://" + cfg.InternalListenAddr + "/healthz")
		if err == nil {
			st = resp.StatusCode
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st != 200 {
		t.Fatalf("internal /healthz: %d", st)
	}
	// The public listener serves mTLS: the edge's certificate gets answers,
	// a client without one is refused in the handshake.
	edge := &http.Client{Transport: &http.Transport{TLSClientConfig: mtlstest.ClientTLS(t, pki, "llm-api", pki.Client(t, devpki.Options{}))}}
	for path, method := range map[string]string{"/healthz": http.MethodGet, "/internal/api-keys/validate": http.MethodPost} {
		req, _ := http.NewRequest(method, "https://"+cfg.ListenAddr+path, strings.NewReader(`{"key":"x"}`))
		req.Header.Set("X-Internal-Token", internalToken)
		resp, err := edge.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("public %s: %d", path, resp.StatusCode)
		}
	}
	if _, err := http.Get("https://" + cfg.ListenAddr + "/healthz"); err == nil {
		t.Fatal("the public listener answered a client without the edge's certificate")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestNoSecretsInServiceLogs(t *testing.T) {
	logs := &testenv.Buffer{}
	e := start(t, logs)
	tok := e.idp.Token(t, "alice", nil)
	k := e.create(t, "k")
	e.validate(t, k.Key)
	call(t, http.MethodPost, e.internal.URL+"/internal/api-keys/validate", map[string]string{"X-Internal-Token": "nope"}, `{"key":"`+k.Key+`"}`)
	call(t, http.MethodDelete, e.public.URL+"/auth/api-keys/"+k.ID, map[string]string{"Authorization": "Bearer " + tok}, "")
	e.validate(t, k.Key)
	time.Sleep(100 * time.Millisecond)
	out := logs.String()
	u := e.cfg.DatabaseURL
	_, pw, _ := strings.Cut(strings.TrimPrefix(string(u), "postgres://"), ":")
	pw, _, _ = strings.Cut(pw, "@")
	for name, s := range map[string]string{"key": k.Key, "jwt": tok, "pepper": string(e.cfg.Pepper), "internal token": internalToken, "db password": pw} {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("%s in the logs", name)
		}
	}
	if !strings.Contains(out, "request_id") {
		t.Fatal("no request logs captured")
	}
}

func init() { testenv.RecordSecret(internalToken) } // the run's secret sweep (scripts/test.sh)

// TestShortLivedKeyExpiresOnTheRealStore: a key created with
// expires_in_seconds (edgectl run's keys) on real PostgreSQL carries its
// expiry in the create and validate answers and is refused once it passes
// (the service's real clock).
func TestShortLivedKeyExpiresOnTheRealStore(t *testing.T) {
	e := start(t, nil)
	before := time.Now()
	st, b := call(t, http.MethodPost, e.public.URL+"/auth/api-keys", e.bearer(t), `{"name":"run:node:0001","expires_in_seconds":1}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var k struct {
		keyAnswer
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.ExpiresAt.Before(before.Add(time.Second)) || k.ExpiresAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("expires_at %v: not 1 s after the creation", k.ExpiresAt)
	}
	st, b = e.validate(t, k.Key)
	var v struct {
		ExpiresAt time.Time `json:"expires_at"`
	}
	if st != 200 || json.Unmarshal(b, &v) != nil || !v.ExpiresAt.Equal(k.ExpiresAt) {
		t.Fatalf("validate before expiry: %d %s (want expires_at %v)", st, b, k.ExpiresAt)
	}
	time.Sleep(time.Until(k.ExpiresAt) + 10*time.Millisecond)
	if st, b := e.validate(t, k.Key); st != 401 || !bytes.Contains(b, []byte("key_expired")) {
		t.Fatalf("validate after expiry: %d %s", st, b)
	}
}

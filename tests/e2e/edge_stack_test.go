package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/edgeguard/edgeguard/tests/e2e/internal/devstack"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/faultproxy"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

// edgeStack is the stack `make dev` runs (scripts/dev.sh: the three
// services, the stub upstream, Kong on kong/kong.yml) on the test
// run's Redis, PostgreSQL and Keycloak, each reached through a fault proxy so
// a test can take it away: every process of the stack — gateway and
// services — talks to Keycloak and Redis only through the proxies, and the
// gateway reaches llm-api's validate endpoint through a third.
type edgeStack struct {
	*devstack.Stack
	gw                        string // the gateway, http://127.0.0.1:<port>
	dsn                       string // llm-api's database (its own schema)
	keycloak, redis, validate *faultproxy.Proxy

	atStop []func() // run by stop: deletes what outlives single tests

	userOnce sync.Once
	user     struct {
		id, name string
		token    string
		err      error
	}
}

// balancerAddr is a second address Kong trusts for X-Forwarded-For, as it
// trusts a load balancer in production: the services trust only Kong
// (127.0.0.1), so what they record for a client behind it is the address
// Kong decided, never their own reading of the chain. No other suite
// connects to the dev gateway from it.
const balancerAddr = "127.0.0.2"

var (
	edgeOnce sync.Once
	edge     *edgeStack
	edgeErr  error
)

// requireEdge returns the suite (Keycloak) and the running edge stack,
// starting it on first use. Without Redis/PostgreSQL it skips locally and
// fails under CI=true.
func requireEdge(t *testing.T) (*suite, *edgeStack) {
	t.Helper()
	s := newSuite(t)
	redisAddr, pgDSN := os.Getenv("EDGEGUARD_TEST_REDIS_ADDR"), os.Getenv("EDGEGUARD_TEST_PG_DSN")
	if redisAddr == "" || pgDSN == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEGUARD_TEST_REDIS_ADDR / EDGEGUARD_TEST_PG_DSN unset under CI=true (scripts/test.sh starts them)")
		}
		t.Skip("no Redis/PostgreSQL (run through make test)")
	}
	edgeOnce.Do(func() { edge, edgeErr = startEdge(s.env, redisAddr, pgDSN) })
	if edgeErr != nil {
		t.Fatalf("the dev stack did not start: %v", edgeErr)
	}
	return s, edge
}

func startEdge(env *keycloak.Env, redisAddr, pgDSN string) (*edgeStack, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	dsn, err := freshSchema(pgDSN)
	if err != nil {
		return nil, err
	}
	kcURL, err := url.Parse(env.URL)
	if err != nil {
		return nil, err
	}
	e := &edgeStack{dsn: dsn}
	if e.keycloak, err = faultproxy.New(kcURL.Host); err != nil {
		return nil, err
	}
	if e.redis, err = faultproxy.New(redisAddr); err != nil {
		return nil, err
	}
	if e.validate, err = faultproxy.New(""); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "edgeguard-e2e-dev-")
	if err != nil {
		return nil, err
	}
	// Kong runs as a non-root user (scripts/kong.sh): it must reach its
	// rendered config and logs below dir (the secrets stay 0700).
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	e.Stack, err = devstack.Up(context.Background(), root, dir, []string{
		"DEV_GATEWAY_PORT=0",
		"REDIS_ADDR=" + e.redis.Addr(),
		"PG_DSN=" + dsn,
		"KEYCLOAK_URL=http://" + e.keycloak.Addr(),
		"KEYCLOAK_ISSUER=" + env.Issuer,
		"KEYCLOAK_LLM_API_CLIENT_SECRET_FILE=" + os.Getenv(keycloak.EnvLLMAPISecret),
		"KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE=" + os.Getenv(keycloak.EnvGuestLoginSecret),
		"DEV_GATEWAY_VALIDATE_URL=http://" + e.validate.Addr() + "/internal/api-keys/validate",
		// The suites log guests in from addresses of their own (X-Forwarded-For
		// through the trusted loopback peer: Kong's trusted_ips), so the per-IP
		// guest limits of the edge and llm-api apply per test, not to the whole run.
		// balancerAddr stands for a load balancer in front of Kong: Kong trusts
		// it, the services (TRUSTED_PROXIES=127.0.0.1, Kong) do not.
		"DEV_GATEWAY_TRUSTED_PROXIES=127.0.0.1," + balancerAddr,
		// The secrets sweep reads every level.
		"LOG_LEVEL=debug",
	})
	if err != nil {
		return nil, err
	}
	internal, err := url.Parse(e.Env["LLM_API_INTERNAL_URL"])
	if err != nil {
		return nil, err
	}
	e.validate.SetTarget(internal.Host)
	e.gw = e.Env["GATEWAY_URL"]
	return e, nil
}

// stop stops the stack and the proxies (TestMain, after the suites).
func (e *edgeStack) stop() error {
	for _, f := range e.atStop {
		f()
	}
	err := e.Down()
	e.keycloak.Close()
	e.redis.Close()
	e.validate.Close()
	return err
}

// freshSchema creates an empty schema for this run's llm-api and returns a
// DSN whose search_path is it.
func freshSchema(dsn string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "e2e_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// userToken is an access token of one ordinary user (role user), logged in
// with jan-cli's device flow through the gateway; one per run (a device
// login waits out Keycloak's 5 s polling interval).
func (e *edgeStack) userToken(t *testing.T, s *suite) (id, token string) {
	t.Helper()
	e.userOnce.Do(func() {
		id, name, pw := s.createUserUntil(t, func(f func()) { e.atStop = append(e.atStop, f) })
		// Keycloak's routes answer only the public host (localhost:<port>).
		tok := s.deviceLogin(t, e.Env["GATEWAY_PUBLIC_URL"]+"/realms/jan", name, pw)
		e.user.id, e.user.name, e.user.token = id, name, tok.AccessToken
	})
	if e.user.token == "" {
		t.Fatal("no user token (the first device login failed)")
	}
	return e.user.id, e.user.token
}

// guest logs a guest in through the gateway.
func (e *edgeStack) guest(t *testing.T) (access, refresh string) {
	t.Helper()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	res := e.do(t, http.MethodPost, "/auth/guest-login", "", nil, http.Header{"X-Forwarded-For": {clientAddr()}})
	if res.status != http.StatusOK {
		t.Fatalf("guest login: %d %s", res.status, res.body)
	}
	if err := json.Unmarshal(res.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("guest login answer: %v", err)
	}
	used.add(tok.AccessToken)
	used.add(tok.RefreshToken)
	return tok.AccessToken, tok.RefreshToken
}

// apiKey creates an API key for the holder of jwt through the gateway.
func (e *edgeStack) apiKey(t *testing.T, jwt, name string) (id, key string) {
	t.Helper()
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	res := e.do(t, http.MethodPost, "/auth/api-keys", jwt, map[string]any{"name": name}, nil)
	if res.status != http.StatusCreated {
		t.Fatalf("create API key: %d %s", res.status, res.body)
	}
	if err := json.Unmarshal(res.body, &k); err != nil || !strings.HasPrefix(k.Key, "sk_") {
		t.Fatalf("API key answer: %v", err)
	}
	used.add(k.Key)
	return k.ID, k.Key
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// code is the stable error code of an edge or service error body.
func (a answer) code() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

// do sends one request to the gateway: bearer (JWT or sk_ key) when not
// empty, body as JSON when not nil, extra headers as given ("Host" sets the
// request's Host).
func (e *edgeStack) do(t *testing.T, method, path, bearer string, body any, extra http.Header) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.gw+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, vs := range extra {
		if k == "Host" { // the Keycloak routes answer only the public host
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs // as given: spoofing tests send non-canonical names
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// clientAddr is a random address of TEST-NET-3 (RFC 5737), one client.
func clientAddr() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("203.0.113.%d", 1+int(b[0])%254)
}

// eventually retries f until it reports true or d passes.
func eventually(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

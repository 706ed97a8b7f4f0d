package kong

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// repoIssuer is the issuer kong/kong.yml's routes trust (the public realm
// URL of `make dev`); the test's IdP signs tokens with it.
const repoIssuer = "http://localhost:8000/realms/jan"

// TestUpstreamServerHeadersNeverReachClients renders the repository's own
// kong/kong.yml and kong.conf (scripts/kong.sh: loopback addresses, the
// test's secrets, Keycloak, llm-api over mTLS and Redis rewritten to the
// test's stand-ins; newRepoKong) with the real plugin servers, and checks
// that an upstream's own Server and X-Powered-By headers reach no client: on
// an authenticated
// API route (llm-openai, the edgeguard plugin), on the public Keycloak
// route (header-guard, redis-ratelimit), and on Kong's own answers (a
// plugin's 401, no route's 404).
func TestUpstreamServerHeadersNeverReachClients(t *testing.T) {
	f := newRepoKong(t)
	k := f.k
	token := f.token(t)

	tests := []struct {
		name     string
		path     string
		header   http.Header
		status   int
		upstream bool // the answer is the upstream's
	}{
		{"API route, valid token (edgeguard → llm-api)", "/v1/models", http.Header{"Authorization": {"Bearer " + token}}, 200, true},
		// kong.yml serves Keycloak's routes for the public host only (hosts: [localhost])
		{"public Keycloak route (header-guard, redis-ratelimit → Keycloak)", "/realms/jan/.well-known/openid-configuration", http.Header{"Host": {"localhost"}}, 200, true},
		{"a plugin's own answer (401)", "/v1/models", nil, 401, false},
		{"Kong's own answer (404, no route)", "/internal/metrics", nil, 404, false},
	}
	for _, tt := range tests {
		r := mustDo(t, http.MethodGet, k.proxy+tt.path, tt.header)
		if r.status != tt.status {
			t.Errorf("%s: GET %s: %d %s, want %d", tt.name, tt.path, r.status, r.body, tt.status)
			continue
		}
		if tt.upstream && len(r.body) == 0 {
			t.Errorf("%s: no body from the upstream", tt.name)
		}
		for _, h := range []string{"Server", "X-Powered-By", "Via"} {
			if v := r.header.Values(h); len(v) > 0 {
				t.Errorf("%s: GET %s: the client got %s: %q", tt.name, tt.path, h, v)
			}
		}
	}
}

// startPasswordRedis starts a private redis-server that requires password
// (kong/kong.yml's Redis has one) on a free loopback port; it stops with
// the test.
func startPasswordRedis(t *testing.T, password string) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		skipOrFail(t, "redis-server not in PATH (scripts/redis.sh installs it)")
	}
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning", "--requirepass", password)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start", addr)
		}
	}
}

// jwtIdP is the test's identity provider (tokens for repoIssuer).
func jwtIdP(t testing.TB) *jwttest.IdP { return jwttest.New(t) }

// keycloakStandIn serves the IdP's JWKS where kong.yml's jwks_url points,
// and a discovery document with upstream Server/X-Powered-By headers on
// everything else.
func keycloakStandIn(t testing.TB, p *jwttest.IdP) *httptest.Server {
	kc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "test-keycloak/26")
		w.Header().Set("X-Powered-By", "test-quarkus/3")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/realms/jan/protocol/openid-connect/certs" {
			_, _ = w.Write(p.JWKS())
			return
		}
		_, _ = w.Write([]byte(`{"issuer":"` + repoIssuer + `"}`))
	}))
	t.Cleanup(kc.Close)
	return kc
}

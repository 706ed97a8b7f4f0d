package ginedge_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

// TestClientIPIsTheEdgesOnAuthenticatedRoutes: on a route behind the edge
// assertion the client address for limits, audit and the request log is
// the assertion's signed cip claim — whatever X-Forwarded-For says and
// whether or not the peer is a trusted proxy (a TRUSTED_PROXIES left at a
// placeholder changes nothing there). Without credentials it is gin's:
// X-Forwarded-For (the one address the gateway sends) only from a trusted
// peer, else the peer.
func TestClientIPIsTheEdgesOnAuthenticatedRoutes(t *testing.T) {
	dir := t.TempDir()
	key, jwks := filepath.Join(dir, "edge.key"), filepath.Join(dir, "edge.jwks.json")
	if err := edgeid.WriteKeyFiles(key, jwks); err != nil {
		t.Fatal(err)
	}
	signer, err := edgeid.LoadSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(jwks)
	v, err := edgeid.NewVerifier(b, "llm-api", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := edgehttp.New(edgehttp.Config{Authenticator: edgehttp.Chain{&edgehttp.EdgeIdentity{Verifier: v}}})
	if err != nil {
		t.Fatal(err)
	}
	user := &identity.Identity{Subject: "u1", AuthMethod: identity.MethodJWT}
	assertion := func(client string) string {
		var a netip.Addr
		if client != "" {
			a = netip.MustParseAddr(client)
		}
		s, err := signer.SignClient(user, "llm-api", http.MethodGet, "/v1/models", a, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	for _, tt := range []struct {
		name    string
		trusted []string
		path    string
		header  http.Header
		want    string
	}{
		{"the assertion's address, no proxy trusted", nil, "/v1/models",
			http.Header{"X-Edge-Identity": {assertion("203.0.113.9")}, "X-Forwarded-For": {"198.18.0.9"}}, "203.0.113.9"},
		{"the assertion's address over X-Forwarded-For from the trusted gateway", []string{"192.0.2.1"}, "/v1/models",
			http.Header{"X-Edge-Identity": {assertion("203.0.113.9")}, "X-Forwarded-For": {"198.18.0.9"}}, "203.0.113.9"},
		{"an assertion without an address: gin's", []string{"192.0.2.1"}, "/v1/models",
			http.Header{"X-Edge-Identity": {assertion("")}, "X-Forwarded-For": {"198.51.100.3"}}, "198.51.100.3"},
		{"no credentials, trusted gateway: its one X-Forwarded-For address", []string{"192.0.2.1"}, "/auth/guest-login",
			http.Header{"X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7"},
		{"no credentials, untrusted peer: the peer", nil, "/auth/guest-login",
			http.Header{"X-Forwarded-For": {"203.0.113.7"}}, "192.0.2.1"},
		{"a client's own cip header changes nothing", nil, "/auth/guest-login",
			http.Header{"X-Forwarded-For": {"203.0.113.7"}, "Cip": {"198.18.0.9"}}, "192.0.2.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			e, err := ginedge.NewEngine(zerolog.New(&logs), tt.trusted, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			e.GET("/v1/models", ginedge.Authenticate(m), func(c *gin.Context) { got = ginedge.ClientIP(c); c.Status(204) })
			e.GET("/auth/guest-login", func(c *gin.Context) { got = ginedge.ClientIP(c); c.Status(204) })
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			r.RemoteAddr = "192.0.2.1:40000"
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, r)
			if rec.Code != 204 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if got != tt.want {
				t.Errorf("ClientIP %q, want %q", got, tt.want)
			}
			var line struct {
				ClientIP string `json:"client_ip"`
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line.ClientIP != tt.want {
				t.Errorf("request log client_ip %q (%v), want %q: %s", line.ClientIP, err, tt.want, logs.String())
			}
		})
	}
}

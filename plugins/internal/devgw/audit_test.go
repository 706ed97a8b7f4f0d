package devgw

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// The dev gateway runs the plugins' audit as Kong does: a 401 of
// keycloak-jwt is an auth.denied event, a misconfigured keycloak-apikey
// instance one config.rejected, on the real Redis stream.
func TestDevGatewayAuditsDenialsAndMisconfiguration(t *testing.T) {
	addr, stream, rdb := audittest.Stream(t)
	idp := jwttest.New(t)
	auditCfg := fmt.Sprintf(`{redis: {addresses: [%q]}, stream: %q}`, addr, stream)
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
- name: s
  url: http://127.0.0.1:1
  routes:
  - name: jwt
    paths: [/v1/models]
    strip_path: false
    plugins:
    - name: keycloak-jwt
      config:
        issuers: [{issuer: %q, jwks_url: %q}]
        audiences: [jan-api]
        audit: %s
  - name: broken
    paths: [/broken]
    plugins:
    - name: keycloak-apikey
      config:
        audit: %s
`, idp.Issuer, idp.JWKSURL(), auditCfg, auditCfg)
	g, _ := newGateway(t, yml, Options{})
	if rec := serve(g, httptest.NewRequest("GET", "/v1/models", nil)); rec.Code != 401 {
		t.Fatalf("no token: %d", rec.Code)
	}
	for range 3 {
		if rec := serve(g, httptest.NewRequest("GET", "/broken", nil)); rec.Code != 500 {
			t.Fatalf("broken: %d", rec.Code)
		}
	}
	msgs := audittest.WaitFor(t, rdb, stream, 2, 5*time.Second)
	time.Sleep(50 * time.Millisecond) // nothing more may arrive
	if n := rdb.XLen(context.Background(), stream).Val(); len(msgs) != 2 || n != 2 {
		t.Fatalf("events %+v (stream length %d), want 2", msgs, n)
	}
	byAction := map[audit.Action]audit.Event{}
	for _, e := range msgs {
		byAction[e.Action] = e
	}
	d, ok := byAction[audit.ActionAuthDenied]
	if !ok || d.Source != "keycloak-jwt" || d.Reason != "credential_missing" || d.Actor.IP != "192.0.2.1" || d.Target != "/v1/models" {
		t.Fatalf("auth.denied %+v", d)
	}
	r, ok := byAction[audit.ActionConfigRejected]
	if !ok || r.Source != "keycloak-apikey" || r.Severity != audit.SeverityCritical {
		t.Fatalf("config.rejected %+v", r)
	}
}

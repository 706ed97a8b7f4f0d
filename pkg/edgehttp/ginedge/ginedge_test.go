package ginedge_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/gin-gonic/gin"
)

func TestGinAdapterAppliesTheSameChecks(t *testing.T) {
	gin.SetMode(gin.TestMode)
	idp := jwttest.New(t)
	v, err := jwtauth.New(jwtauth.Config{
		Issuers:   []jwtauth.Issuer{{Issuer: idp.Issuer, JWKSURL: idp.JWKSURL()}},
		Audiences: []string{"jan-api"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m, err := edgehttp.New(edgehttp.Config{Authenticator: &edgehttp.JWT{Verifier: v},
		Policy: identity.Policy{AuthMethods: []string{identity.MethodJWT}, ForbiddenRoles: []string{identity.RoleGuest}}})
	if err != nil {
		t.Fatal(err)
	}
	e := gin.New()
	reached := 0
	e.GET("/x", ginedge.Authenticate(m), func(c *gin.Context) {
		reached++
		id, ok := ginedge.Identity(c)
		id2, ok2 := edgehttp.IdentityFrom(c.Request.Context())
		if !ok || !ok2 || id != id2 {
			t.Error("identity missing from the gin or request context")
		}
		c.String(200, id.Subject)
	})
	cases := []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"valid", map[string]string{"Authorization": "Bearer " + idp.Token(t, "bob", nil)}, 200, ""},
		{"forged headers only", map[string]string{"X-User-ID": "admin", "X-User-Roles": "admin"}, 401, edgehttp.CodeCredentialMissing},
		{"forged headers and a bad token", map[string]string{"X-User-ID": "admin", "Authorization": "Bearer a.b.c"}, 401, "token_malformed"},
		{"guest", map[string]string{"Authorization": "Bearer " + idp.Token(t, "g", map[string]any{"realm_access": map[string]any{"roles": []string{"guest"}}})}, 403, "forbidden_role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := reached
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			for k, v := range c.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, r)
			if w.Code != c.status {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, c.status)
			}
			if c.status == 200 {
				if w.Body.String() != "bob" {
					t.Fatalf("body %q", w.Body)
				}
				return
			}
			if reached != before {
				t.Fatal("handler ran for a refused request")
			}
			var b edgehttp.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Code != c.code {
				t.Fatalf("body %s, want code %q", w.Body, c.code)
			}
			if c.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

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
	"github.com/rs/zerolog"
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

// staticAuth authenticates "Bearer <name>" as the identity of that name.
type staticAuth map[string]*identity.Identity

func (s staticAuth) Authenticate(r *http.Request) (*identity.Identity, error) {
	tok, st := edgehttp.BearerToken(r.Header)
	if st == edgehttp.CredAbsent {
		return nil, edgehttp.ErrNoCredential
	}
	if id, ok := s[tok]; ok {
		return id, nil
	}
	return nil, &edgehttp.Rejection{Status: http.StatusUnauthorized, Code: "token_invalid", Challenge: "invalid_token"}
}

// A group's guard applies the policy given where the group is registered;
// without an authenticator (AUTH_ENABLED=false) it answers 503
// auth_disabled naming what is unavailable.
func TestGuardAppliesTheGroupsPolicy(t *testing.T) {
	gin.SetMode(gin.TestMode)
	people := staticAuth{
		"admin": {Subject: "carol", RealmRoles: []string{"admin"}, AuthMethod: identity.MethodJWT},
		"key":   {Subject: "dave", RealmRoles: []string{"admin"}, AuthMethod: identity.MethodAPIKey},
		"guest": {Subject: "g", RealmRoles: []string{identity.RoleGuest}, AuthMethod: identity.MethodJWT},
	}
	adminOnly := identity.Policy{RequiredRoles: []string{"admin"}, AuthMethods: []string{identity.MethodJWT}}
	e := gin.New()
	on, err := ginedge.Guard(people, adminOnly, zerolog.Nop(), "the admin API")
	if err != nil {
		t.Fatal(err)
	}
	off, err := ginedge.Guard(nil, adminOnly, zerolog.Nop(), "the admin API")
	if err != nil {
		t.Fatal(err)
	}
	e.Group("/on", on).GET("", func(c *gin.Context) { c.String(200, "ok") })
	e.Group("/off", off).GET("", func(c *gin.Context) { c.String(200, "ok") })
	for _, tc := range []struct {
		path, cred string
		status     int
		code, msg  string
	}{
		{"/on", "admin", 200, "", ""},
		{"/on", "", 401, edgehttp.CodeCredentialMissing, ""},
		{"/on", "key", 403, "auth_method_not_allowed", ""},
		{"/on", "guest", 403, "insufficient_role", ""},
		{"/off", "admin", 503, "auth_disabled", "authentication is disabled (AUTH_ENABLED=false): the admin API is unavailable"},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.cred != "" {
			r.Header.Set("Authorization", "Bearer "+tc.cred)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		var b edgehttp.ErrorBody
		_ = json.Unmarshal(w.Body.Bytes(), &b)
		if w.Code != tc.status || b.Error.Code != tc.code || (tc.msg != "" && b.Error.Message != tc.msg) {
			t.Errorf("%s as %q: %d %s, want %d %s", tc.path, tc.cred, w.Code, w.Body, tc.status, tc.code)
		}
	}
	if _, err := ginedge.Guard(people, identity.Policy{AuthMethods: []string{"password"}}, zerolog.Nop(), "x"); err == nil {
		t.Error("a policy edgehttp refuses was accepted")
	}
}

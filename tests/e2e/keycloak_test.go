package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

func TestRealmImportServesDiscoveryWithPublicIssuer(t *testing.T) {
	s := newSuite(t)
	var disc struct {
		Issuer     string `json:"issuer"`
		JWKSURI    string `json:"jwks_uri"`
		TokenURL   string `json:"token_endpoint"`
		DeviceURL  string `json:"device_authorization_endpoint"`
		AuthURL    string `json:"authorization_endpoint"`
		Challenges []any  `json:"code_challenge_methods_supported"`
	}
	resp, err := s.kc.HTTP.Get(s.kc.RealmURL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: status %d (realm not imported?)", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil {
		t.Fatal(err)
	}
	want := s.expectedIssuer()
	if disc.Issuer != want || s.env.Issuer != want {
		t.Fatalf("issuer: discovery %q, KEYCLOAK_ISSUER %q, want %q", disc.Issuer, s.env.Issuer, want)
	}
	// Front-channel endpoints use the public hostname; back-channel ones
	// (--hostname-backchannel-dynamic) the URL the request came in on.
	for name, u := range map[string]string{"authorization": disc.AuthURL, "device": disc.DeviceURL} {
		if !strings.HasPrefix(u, want+"/") {
			t.Errorf("%s endpoint %q is not under the public issuer", name, u)
		}
	}
	for name, u := range map[string]string{"jwks": disc.JWKSURI, "token": disc.TokenURL} {
		if !strings.HasPrefix(u, s.kc.RealmURL()+"/") {
			t.Errorf("%s endpoint %q is not the loopback back channel", name, u)
		}
	}

	// The JWKS serves the RS256 and the ES256 key of the realm's providers.
	var jwks struct {
		Keys []struct{ Kty, Alg, Use, Crv string } `json:"keys"`
	}
	resp2, err := s.kc.HTTP.Get(s.env.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if err := json.NewDecoder(resp2.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	var rs, es bool
	for _, k := range jwks.Keys {
		rs = rs || (k.Kty == "RSA" && k.Alg == "RS256" && k.Use == "sig")
		es = es || (k.Kty == "EC" && k.Alg == "ES256" && k.Crv == "P-256" && k.Use == "sig")
	}
	if !rs || !es {
		t.Fatalf("JWKS: RS256 key %t, ES256 key %t; want both", rs, es)
	}
}

func TestRealmSettingsMatchTheDesign(t *testing.T) {
	s := newSuite(t)
	var realm struct {
		RegistrationAllowed bool              `json:"registrationAllowed"`
		BruteForceProtected bool              `json:"bruteForceProtected"`
		RevokeRefreshToken  bool              `json:"revokeRefreshToken"`
		RefreshTokenReuse   int               `json:"refreshTokenMaxReuse"`
		AccessTokenLifespan int               `json:"accessTokenLifespan"`
		SSOIdle             int               `json:"ssoSessionIdleTimeout"`
		SSOMax              int               `json:"ssoSessionMaxLifespan"`
		PasswordPolicy      string            `json:"passwordPolicy"`
		EventsEnabled       bool              `json:"eventsEnabled"`
		EventsExpiration    int               `json:"eventsExpiration"`
		AdminEventsEnabled  bool              `json:"adminEventsEnabled"`
		BrowserFlow         string            `json:"browserFlow"`
		DirectGrantFlow     string            `json:"directGrantFlow"`
		Attributes          map[string]string `json:"attributes"`
		DefaultRole         struct{ Name string }
		WebAuthnAlgorithms  []string `json:"webAuthnPolicySignatureAlgorithms"`
		WebAuthnUV          string   `json:"webAuthnPolicyUserVerificationRequirement"`
		WebAuthnAttestation string   `json:"webAuthnPolicyAttestationConveyancePreference"`
		WebAuthnRPID        string   `json:"webAuthnPolicyRpId"`
	}
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "", nil, &realm); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"registration off", !realm.RegistrationAllowed},
		{"brute-force protection on", realm.BruteForceProtected},
		{"refresh tokens rotate (revokeRefreshToken, no reuse)", realm.RevokeRefreshToken && realm.RefreshTokenReuse == 0},
		{"access tokens live 5 min", realm.AccessTokenLifespan == 300},
		{"SSO idle and max set", realm.SSOIdle > 0 && realm.SSOMax >= realm.SSOIdle},
		{"login events kept for a while", realm.EventsEnabled && realm.EventsExpiration > 0},
		{"admin events kept for a while", realm.AdminEventsEnabled && realm.Attributes["adminEventsExpiration"] != ""},
		{"browser flow with the admins' security key", realm.BrowserFlow == "jan browser"},
		{"direct grant flow refusing admins", realm.DirectGrantFlow == "jan direct grant"},
		{"default role composite", realm.DefaultRole.Name == "default-roles-"+s.env.Realm},
		{"WebAuthn policy: ES256 and RS256", slices.Equal(realm.WebAuthnAlgorithms, []string{"ES256", "RS256"})},
		{"WebAuthn policy: user verification preferred", realm.WebAuthnUV == "preferred"},
		{"WebAuthn policy: attestation none", realm.WebAuthnAttestation == "none"},
		{"WebAuthn policy: relying party = the host users reach Keycloak at", realm.WebAuthnRPID == ""},
	}
	for _, p := range []string{"length(12)", "notUsername", "notEmail", "passwordHistory("} {
		checks = append(checks, struct {
			name string
			ok   bool
		}{"password policy " + p, strings.Contains(realm.PasswordPolicy, p)})
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("realm: %s: not so", c.name)
		}
	}

	// webauthn-register is enabled (an administrator can issue it) but not a
	// default action (new accounts do not get it by themselves).
	var action struct {
		Enabled       bool `json:"enabled"`
		DefaultAction bool `json:"defaultAction"`
	}
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/authentication/required-actions/webauthn-register", nil, &action); err != nil {
		t.Fatal(err)
	}
	if !action.Enabled || action.DefaultAction {
		t.Errorf("required action webauthn-register: enabled %t, default %t; want enabled, not default", action.Enabled, action.DefaultAction)
	}
	// The browser flow, execution by execution (keycloak/README.md
	// "Authentication flows").
	if got := s.browserFlow(t); !slices.Equal(got, janBrowserFlow) {
		t.Errorf("browser flow:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(janBrowserFlow, "\n"))
	}

	var profile struct {
		Attributes []struct {
			Name        string
			Permissions struct{ View, Edit []string }
		}
	}
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/users/profile", nil, &profile); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(profile.Attributes, func(a struct {
		Name        string
		Permissions struct{ View, Edit []string }
	}) bool {
		return a.Name == "guest"
	})
	if i < 0 {
		t.Fatal("user profile does not declare attribute guest (Keycloak would drop it)")
	}
	if p := profile.Attributes[i].Permissions; !slices.Equal(p.Edit, []string{"admin"}) || !slices.Contains(p.View, "user") {
		t.Errorf("attribute guest: edit %v view %v; want admin-editable, user-viewable", p.Edit, p.View)
	}

	var groups []struct{ Name string }
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/groups?search=guests&exact=true", nil, &groups); err != nil || len(groups) != 1 {
		t.Errorf("group guests: %v, %v", groups, err)
	}
}

type clientRep struct {
	ID                        string            `json:"id"`
	ClientID                  string            `json:"clientId"`
	PublicClient              bool              `json:"publicClient"`
	StandardFlowEnabled       bool              `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       bool              `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	BearerOnly                bool              `json:"bearerOnly"`
	Enabled                   bool              `json:"enabled"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	FullScopeAllowed          bool              `json:"fullScopeAllowed"`
	RedirectURIs              []string          `json:"redirectUris"`
	Attributes                map[string]string `json:"attributes"`
	FlowOverrides             map[string]string `json:"authenticationFlowBindingOverrides"`
}

func TestClientsAreConfiguredAsDesigned(t *testing.T) {
	s := newSuite(t)
	get := func(t *testing.T, id string) clientRep {
		t.Helper()
		var cs []clientRep
		if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/clients?clientId="+id, nil, &cs); err != nil || len(cs) != 1 {
			t.Fatalf("client %s: %d found, %v", id, len(cs), err)
		}
		return cs[0]
	}
	device := func(c clientRep) bool { return c.Attributes["oauth2.device.authorization.grant.enabled"] == "true" }
	tests := []struct {
		client   string
		check    func(c clientRep) bool
		audience bool // jan-api-audience is a default scope
	}{
		{clientCLI, func(c clientRep) bool {
			return c.PublicClient && device(c) && !c.StandardFlowEnabled && !c.ImplicitFlowEnabled &&
				!c.DirectAccessGrantsEnabled && c.Attributes["pkce.code.challenge.method"] == "" &&
				c.Attributes["dpop.bound.access.tokens"] == "false" && !c.FullScopeAllowed
		}, true},
		// the same, but every token DPoP-bound (Keycloak refuses a token
		// request without a proof: TestKeycloakBindsTokensToTheProofKey)
		{clientAgent, func(c clientRep) bool {
			return c.PublicClient && device(c) && !c.StandardFlowEnabled && !c.ImplicitFlowEnabled &&
				!c.DirectAccessGrantsEnabled && c.Attributes["pkce.code.challenge.method"] == "" &&
				c.Attributes["dpop.bound.access.tokens"] == "true" && !c.FullScopeAllowed
		}, true},
		{clientWeb, func(c clientRep) bool {
			exact := !slices.ContainsFunc(c.RedirectURIs, func(u string) bool { return strings.Contains(u, "*") })
			return c.PublicClient && c.StandardFlowEnabled && !device(c) && !c.ImplicitFlowEnabled &&
				!c.DirectAccessGrantsEnabled && c.Attributes["pkce.code.challenge.method"] == "S256" &&
				exact && slices.Contains(c.RedirectURIs, webRedirectURI)
		}, true},
		{clientLLMAPI, func(c clientRep) bool {
			return !c.PublicClient && c.ServiceAccountsEnabled && !c.StandardFlowEnabled && !device(c) &&
				!c.DirectAccessGrantsEnabled && !c.FullScopeAllowed
		}, false},
		{clientGuest, func(c clientRep) bool {
			return !c.PublicClient && c.DirectAccessGrantsEnabled && !c.StandardFlowEnabled && !device(c) &&
				!c.ServiceAccountsEnabled && !c.FullScopeAllowed && c.FlowOverrides["direct_grant"] != ""
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.client, func(t *testing.T) {
			c := get(t, tc.client)
			if !tc.check(c) {
				t.Errorf("client %s is not configured as designed: %+v", tc.client, c)
			}
			var scopes []struct{ Name string }
			if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/clients/"+c.ID+"/default-client-scopes", nil, &scopes); err != nil {
				t.Fatal(err)
			}
			names := make([]string, len(scopes))
			for i, sc := range scopes {
				names[i] = sc.Name
			}
			if slices.Contains(names, "jan-api-audience") != tc.audience {
				t.Errorf("default scopes %v: jan-api-audience present %t, want %t", names, !tc.audience, tc.audience)
			}
			if tc.audience && !slices.Contains(names, "basic") {
				t.Errorf("default scopes %v lack basic (sub claim)", names)
			}
		})
	}
	if t.Failed() {
		return
	}
	// No client secret is a literal placeholder: the import substituted them.
	literal := keycloak.Secret("${JAN_LLM_API_CLIENT_SECRET}")
	if _, err := s.kc.ClientCredentials(s.ctx, clientLLMAPI, literal); keycloak.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("llm-api with the literal placeholder as secret: %v, want 401", err)
	}
	if _, err := s.kc.ClientCredentials(s.ctx, clientLLMAPI, s.env.LLMAPISecret); err != nil {
		t.Errorf("llm-api with the generated secret: %v", err)
	}
}

func TestGuestTokenVerifiesAgainstLiveJWKS(t *testing.T) {
	s := newSuite(t)
	id, username, pw := s.createGuest(t)
	tok, err := s.kc.PasswordGrant(s.ctx, clientGuest, s.env.GuestLoginSecret, username, pw, "")
	if err != nil {
		t.Fatalf("guest-login password grant: %v", err)
	}
	v, fetches := s.verifier(t, nil)
	got, err := v.Verify(s.ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("guest access token refused: %v", err)
	}
	if got.Subject != id || got.Username != username || got.ClientID != clientGuest || got.Issuer != s.env.Issuer {
		t.Errorf("identity: sub %q user %q azp %q iss %q; want %q %q %q %q",
			got.Subject, got.Username, got.ClientID, got.Issuer, id, username, clientGuest, s.env.Issuer)
	}
	if !got.HasRole("guest") || got.HasRole("user") || !got.Guest {
		t.Errorf("guest token roles %v (guest flag %t): want guest and not user", got.RealmRoles, got.Guest)
	}
	if n := fetches.jwks.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
	if tok.ExpiresIn < 290 || tok.ExpiresIn > 300 {
		t.Errorf("access token lifetime %d s, want 5 min", tok.ExpiresIn)
	}
	// The guest is a guest in Keycloak too, not only in its token.
	roles, err := s.kc.EffectiveRealmRoles(s.ctx, s.serviceAccount(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(roles, "guest") || slices.Contains(roles, "user") {
		t.Errorf("guest's effective realm roles %v: want guest, not user", roles)
	}

	// OIDC discovery (no JWKS URL configured) finds the same keys.
	vd, _ := s.verifier(t, func(c *jwtauth.Config) { c.Issuers[0].JWKSURL = "" })
	if _, err := vd.Verify(s.ctx, tok.AccessToken); err != nil {
		t.Errorf("verifier using discovery: %v", err)
	}
}

func TestIDAndRefreshTokensAreRejectedAsAccessTokens(t *testing.T) {
	s := newSuite(t)
	_, username, pw := s.createGuest(t)
	tok, err := s.kc.PasswordGrant(s.ctx, clientGuest, s.env.GuestLoginSecret, username, pw, "openid")
	if err != nil {
		t.Fatalf("guest-login password grant: %v", err)
	}
	if tok.IDToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login returned %v; want ID and refresh tokens", tok)
	}
	v, _ := s.verifier(t, nil)
	if _, err := v.Verify(s.ctx, tok.AccessToken); err != nil {
		t.Fatalf("the access token of the same login: %v", err)
	}
	tests := []struct {
		name, token string
		want        jwtauth.Reason
	}{
		// RS256 like the access token, but claim typ "ID".
		{"id token", tok.IDToken, jwtauth.ReasonTokenType},
		// Keycloak signs refresh tokens (typ "Refresh") with the realm's
		// HS512 key; HMAC is never an allowed algorithm, so the header check
		// refuses it before the claims' typ is read.
		{"refresh token", tok.RefreshToken, jwtauth.ReasonAlgNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(s.ctx, tc.token)
			if r := jwtauth.ReasonOf(err); r != tc.want {
				t.Fatalf("%s as access token: reason %q, want %q", tc.name, r, tc.want)
			}
		})
	}
	if typ := segment(t, tok.RefreshToken, 1)["typ"]; typ != "Refresh" {
		t.Errorf("refresh token claim typ %v, want Refresh", typ)
	}
}

func TestTokenWithoutJanAPIAudienceIsRejected(t *testing.T) {
	s := newSuite(t)
	id, username, pw := s.createUser(t)
	client, secret := s.createTestClient(t, "basic", "roles", "profile")
	tok, err := s.kc.PasswordGrant(s.ctx, client, secret, username, pw, "")
	if err != nil {
		t.Fatalf("test client password grant: %v", err)
	}
	// A new user gets role user through the default roles.
	if roles := realmRoles(t, tok.AccessToken); !slices.Contains(roles, "user") || slices.Contains(roles, "guest") {
		t.Errorf("new user's token roles %v: want user (default role), not guest", roles)
	}
	adminTok, err := s.kc.AdminToken(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if roles, err := s.kc.EffectiveRealmRoles(s.ctx, adminTok, id); err != nil || !slices.Contains(roles, "user") {
		t.Errorf("new user's effective roles %v (%v): want user", roles, err)
	}

	for name, edit := range map[string]func(*jwtauth.Config){
		"edge allowlist":        nil,
		"test client allowlist": func(c *jwtauth.Config) { c.AllowedAZP = append(c.AllowedAZP, client) },
	} {
		t.Run(name, func(t *testing.T) {
			v, _ := s.verifier(t, edit)
			if _, err := v.Verify(s.ctx, tok.AccessToken); jwtauth.ReasonOf(err) != jwtauth.ReasonAudience {
				t.Fatalf("token without aud jan-api: %v, want %s", err, jwtauth.ReasonAudience)
			}
		})
	}
}

func TestGuestLoginRefusesEveryoneButGuests(t *testing.T) {
	s := newSuite(t)
	_, user, userPW := s.createUser(t)
	_, admin, adminPW := s.createUser(t, "admin")
	_, guest, guestPW := s.createGuest(t)
	tests := []struct {
		name, username string
		pw             keycloak.Secret
	}{
		{"user with the right password", user, userPW},
		{"admin with the right password", admin, adminPW},
		{"guest with a wrong password", guest, newPassword()},
		{"unknown user", "nobody-" + randHex(4), newPassword()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.kc.PasswordGrant(s.ctx, clientGuest, s.env.GuestLoginSecret, tc.username, tc.pw, "")
			if err == nil || tok != nil || keycloak.StatusOf(err) != http.StatusUnauthorized {
				t.Fatalf("guest-login: %v, want 401 and no token", err)
			}
		})
	}
	// guest-login is confidential: no token without its secret.
	if _, err := s.kc.PasswordGrant(s.ctx, clientGuest, "", guest, guestPW, ""); keycloak.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("guest-login without client secret: %v, want 401", err)
	}
}

func TestAdminsCannotUseThePasswordGrant(t *testing.T) {
	s := newSuite(t)
	client, secret := s.createTestClient(t, "basic", "roles")
	_, user, userPW := s.createUser(t)
	_, admin, adminPW := s.createUser(t, "admin")
	if _, err := s.kc.PasswordGrant(s.ctx, client, secret, user, userPW, ""); err != nil {
		t.Fatalf("plain user, realm direct grant flow: %v", err)
	}
	// Admins log in through the browser, with their security key.
	if tok, err := s.kc.PasswordGrant(s.ctx, client, secret, admin, adminPW, ""); tok != nil || keycloak.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("admin, realm direct grant flow: %v, want 401", err)
	}
}

// passwordGrantClients are the realm's clients that need the password grant
// (direct access grants), each with the reason. Every other client refuses it.
var passwordGrantClients = map[string]string{
	clientGuest: "llm-api mints guest tokens with it (services/llm-api/internal/keycloak PasswordGrant); " +
		"its own direct grant flow refuses every user without role guest before the password " +
		"(TestGuestLoginRefusesEveryoneButGuests)",
}

// Every client of the realm — ours and the ones Keycloak creates in each realm
// (admin-cli, account, account-console, broker, realm-management,
// security-admin-console) — refuses the password grant with a real user's
// right credentials, except the ones in passwordGrantClients: the realm's
// public token endpoint must not be a password-guessing oracle. Keycloak
// 26's admin-cli of a new realm accepts it unless the realm file declares
// it without.
func TestOnlyClientsThatNeedItAcceptThePasswordGrant(t *testing.T) {
	s := newSuite(t)
	_, user, userPW := s.createUser(t)
	_, guest, guestPW := s.createGuest(t)
	var clients []clientRep
	if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/clients", nil, &clients); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range clients {
		seen[c.ClientID] = true
	}
	for _, want := range []string{"admin-cli", "account", "account-console", "broker", "realm-management",
		"security-admin-console", clientCLI, clientAgent, clientWeb, clientLLMAPI, clientGuest} {
		if !seen[want] {
			t.Errorf("client %s not listed by the admin API (listed: %d clients)", want, len(clients))
		}
	}
	for _, c := range clients {
		t.Run(c.ClientID, func(t *testing.T) {
			// The right client secret, so that a refusal is about the grant,
			// not about client authentication.
			var secret keycloak.Secret
			if !c.PublicClient && !c.BearerOnly {
				var cred struct {
					Value string `json:"value"`
				}
				if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/clients/"+c.ID+"/client-secret", nil, &cred); err != nil {
					t.Fatalf("client secret: %v", err)
				}
				used.add(cred.Value)
				secret = keycloak.Secret(cred.Value)
			}
			if reason, ok := passwordGrantClients[c.ClientID]; ok {
				if !c.DirectAccessGrantsEnabled || !c.Enabled {
					t.Fatalf("needs the password grant (%s) but has it off: %+v", reason, c)
				}
				if _, err := s.kc.PasswordGrant(s.ctx, c.ClientID, secret, guest, guestPW, ""); err != nil {
					t.Fatalf("password grant for what it is needed for (%s): %v", reason, err)
				}
				return
			}
			if c.DirectAccessGrantsEnabled {
				t.Errorf("direct access grants enabled: %+v", c)
			}
			// 400: the client authenticated and is not allowed the grant. A
			// bearer-only client has no credentials and gets no token by any
			// grant: 401.
			want := http.StatusBadRequest
			if c.BearerOnly {
				want = http.StatusUnauthorized
			}
			tok, err := s.kc.PasswordGrant(s.ctx, c.ClientID, secret, user, userPW, "")
			if c.Attributes["dpop.bound.access.tokens"] == "true" {
				// Keycloak refuses a request without a DPoP proof first
				// (invalid_request): with one, the refusal is about the grant.
				k, _, _ := dpop.GenerateKey()
				tok, err = s.kc.TokenWith(s.ctx, s.kc.TokenURL(), url.Values{"grant_type": {"password"}, "client_id": {c.ClientID},
					"username": {user}, "password": {string(userPW)}}, proofHeader(t, k, http.MethodPost, s.kc.TokenURL(), ""))
			}
			var oe *keycloak.OAuthError
			if tok != nil || !errors.As(err, &oe) || oe.Code != "unauthorized_client" || oe.Status != want {
				t.Fatalf("password grant with a real user's credentials: %v (token %t), want %d unauthorized_client",
					err, tok != nil, want)
			}
		})
	}
}

func TestLLMAPIServiceAccountHasOnlyUserManagement(t *testing.T) {
	s := newSuite(t)
	sa := s.serviceAccount(t)
	var ra map[string]any
	if m, ok := segment(t, string(sa), 1)["resource_access"].(map[string]any); ok {
		ra, _ = m["realm-management"].(map[string]any)
	}
	var roles []string
	if rs, ok := ra["roles"].([]any); ok {
		for _, r := range rs {
			roles = append(roles, r.(string))
		}
	}
	slices.Sort(roles)
	if want := []string{"manage-users", "query-groups", "query-users", "view-users"}; !slices.Equal(roles, want) {
		t.Errorf("llm-api service account realm-management roles %v, want %v", roles, want)
	}
	id, _, _ := s.createUser(t)
	denied := []struct{ method, path string }{
		{http.MethodGet, "/clients"},
		{http.MethodGet, "/roles/admin"},
		{http.MethodGet, "/events"},
		{http.MethodGet, "/admin-events"},
		{http.MethodPost, "/users/" + id + "/impersonation"},
		{http.MethodGet, "/components"},
	}
	for _, d := range denied {
		if _, err := s.kc.AdminAs(s.ctx, sa, d.method, d.path, nil, nil); keycloak.StatusOf(err) != http.StatusForbidden {
			t.Errorf("service account %s %s: %v, want 403", d.method, d.path, err)
		}
	}
	if _, err := s.kc.AdminURL(s.ctx, sa, http.MethodGet, s.env.URL+"/admin/realms/master/users", nil, nil); keycloak.StatusOf(err) != http.StatusForbidden {
		t.Errorf("service account on the master realm: %v, want 403", err)
	}
	// What it needs: find and delete users (guest cleanup).
	var users []keycloak.User
	if _, err := s.kc.AdminAs(s.ctx, sa, http.MethodGet, "/users?q=guest:true&max=5", nil, &users); err != nil {
		t.Errorf("service account lists guests: %v", err)
	}
	if _, err := s.kc.AdminAs(s.ctx, sa, http.MethodDelete, "/users/"+id, nil, nil); err != nil {
		t.Errorf("service account deletes a user: %v", err)
	}
}

func TestJanWebCodeFlowRequiresPKCEAndExactRedirect(t *testing.T) {
	s := newSuite(t)
	_, username, pw := s.createUser(t)
	verifier, challenge := pkce()
	state := randHex(8)
	auth := func(redirect string, withPKCE bool) string {
		q := url.Values{
			"client_id":     {clientWeb},
			"response_type": {"code"},
			"redirect_uri":  {redirect},
			"scope":         {"openid"},
			"state":         {state},
		}
		if withPKCE {
			q.Set("code_challenge", challenge)
			q.Set("code_challenge_method", "S256")
		}
		return s.kc.RealmURL() + "/protocol/openid-connect/auth?" + q.Encode()
	}

	t.Run("without PKCE", func(t *testing.T) {
		p, err := s.kc.NewBrowser(webRedirectURI).Get(s.ctx, auth(webRedirectURI, false))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Location, "error=invalid_request") {
			t.Fatalf("no code challenge: status %d; want a redirect with error=invalid_request", p.Status)
		}
	})
	t.Run("unregistered redirect", func(t *testing.T) {
		p, err := s.kc.NewBrowser("http://localhost:3000/").Get(s.ctx, auth("http://localhost:3000/evil", true))
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != http.StatusBadRequest || p.Location != "" {
			t.Fatalf("unregistered redirect URI: status %d, redirect %t; want 400 and none", p.Status, p.Location != "")
		}
	})
	t.Run("login", func(t *testing.T) {
		b := s.kc.NewBrowser(webRedirectURI)
		p, err := b.Get(s.ctx, auth(webRedirectURI, true))
		if err != nil {
			t.Fatal(err)
		}
		if p, err = b.Login(s.ctx, p, username, pw); err != nil {
			t.Fatal(err)
		}
		loc, err := url.Parse(p.Location)
		if err != nil || p.Location == "" || loc.Query().Get("code") == "" || loc.Query().Get("state") != state {
			t.Fatalf("login: status %d; want a redirect with code and state", p.Status)
		}
		tok, err := s.kc.Token(s.ctx, url.Values{
			"grant_type":    {"authorization_code"},
			"client_id":     {clientWeb},
			"code":          {loc.Query().Get("code")},
			"redirect_uri":  {webRedirectURI},
			"code_verifier": {verifier},
		})
		if err != nil {
			t.Fatalf("code exchange: %v", err)
		}
		v, _ := s.verifier(t, nil)
		id, err := v.Verify(s.ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("jan-web access token: %v", err)
		}
		if id.ClientID != clientWeb || id.Username != username || !id.HasRole("user") || id.Guest {
			t.Errorf("jan-web identity: azp %q user %q roles %v", id.ClientID, id.Username, id.RealmRoles)
		}
	})
}

// TestAdminWithoutASecurityKeyIsRefusedAtBrowserLogin: the browser flow's
// rules for an admin who has no security key yet, through Keycloak's HTML
// pages (the key itself is TestAdminSecurityKeyInChromium's): refused right
// after the password — never offered the registration, which would let a
// password thief enrol their own key — unless an administrator issued
// webauthn-register, which then runs before any code; and refused again when
// that required action is disabled in the realm (it would not run).
func TestAdminWithoutASecurityKeyIsRefusedAtBrowserLogin(t *testing.T) {
	s := newSuite(t)
	login := func(t *testing.T, username string, pw keycloak.Secret) *keycloak.Page {
		t.Helper()
		_, challenge := pkce()
		q := url.Values{
			"client_id": {clientWeb}, "response_type": {"code"}, "redirect_uri": {webRedirectURI},
			"scope": {"openid"}, "state": {randHex(8)},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"},
		}
		b := s.kc.NewBrowser(webRedirectURI)
		p, err := b.Get(s.ctx, s.kc.RealmURL()+"/protocol/openid-connect/auth?"+q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if p, err = b.Login(s.ctx, p, username, pw); err != nil {
			t.Fatal(err)
		}
		if p.Location != "" {
			t.Fatal("an admin without a security key got a code after the password alone")
		}
		return p
	}
	refused := func(t *testing.T, p *keycloak.Page) {
		t.Helper()
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "Access denied") {
			t.Fatalf("after the password: status %d, want 401 and Keycloak's access denied page", p.Status)
		}
		if strings.Contains(p.Body, "registerWebAuthn") || strings.Contains(p.Body, "webauthn-register") {
			t.Fatal("an admin without a security key was offered the registration")
		}
	}
	issue := func(t *testing.T, id string) {
		t.Helper()
		if _, err := s.kc.Admin(s.ctx, http.MethodPut, "/users/"+id, map[string]any{"requiredActions": []string{"webauthn-register"}}, nil); err != nil {
			t.Fatalf("issue webauthn-register: %v", err)
		}
	}

	t.Run("no key, nothing issued", func(t *testing.T) {
		_, admin, pw := s.createUser(t, "admin")
		refused(t, login(t, admin, pw))
		// The refusal is a login event an alert can match (Keycloak leaves
		// its userId empty: the username is in the details).
		type event struct {
			Error   string            `json:"error"`
			Details map[string]string `json:"details"`
		}
		var events []event
		if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/events?type=LOGIN_ERROR&client="+clientWeb+"&max=50", nil, &events); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(events, func(e event) bool { return e.Error == "access_denied" && e.Details["username"] == admin }) {
			t.Errorf("no LOGIN_ERROR access_denied event for the admin among the last %d", len(events))
		}
	})
	t.Run("no key, webauthn-register issued by an administrator", func(t *testing.T) {
		id, admin, pw := s.createUser(t, "admin")
		issue(t, id)
		p := login(t, admin, pw)
		if p.Status != http.StatusOK || !strings.Contains(p.URL.String(), "execution=webauthn-register") || !strings.Contains(p.Body, "registerWebAuthn") {
			t.Fatalf("after the password: status %d at %s; want the security key registration", p.Status, p.URL.Path)
		}
	})
	t.Run("webauthn-register issued but disabled in the realm", func(t *testing.T) {
		id, admin, pw := s.createUser(t, "admin")
		issue(t, id)
		const ra = "/authentication/required-actions/webauthn-register"
		var action map[string]any
		if _, err := s.kc.Admin(s.ctx, http.MethodGet, ra, nil, &action); err != nil {
			t.Fatal(err)
		}
		action["enabled"] = false
		if _, err := s.kc.Admin(s.ctx, http.MethodPut, ra, action, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			action["enabled"] = true
			if _, err := s.kc.Admin(context.WithoutCancel(s.ctx), http.MethodPut, ra, action, nil); err != nil {
				t.Errorf("re-enable webauthn-register: %v", err)
			}
		})
		refused(t, login(t, admin, pw))
	})
}

func TestDeviceFlowOnJanCLI(t *testing.T) {
	s := newSuite(t)
	_, username, pw := s.createUser(t)
	tok := s.deviceLogin(t, s.kc.RealmURL(), username, pw)
	v, _ := s.verifier(t, nil)
	id, err := v.Verify(s.ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("jan-cli access token: %v", err)
	}
	if id.ClientID != clientCLI || id.Username != username || !id.HasRole("user") {
		t.Errorf("jan-cli identity: azp %q user %q roles %v", id.ClientID, id.Username, id.RealmRoles)
	}
}

func TestKeyRotationNeedsExactlyOneJWKSFetch(t *testing.T) {
	s := newSuite(t)
	_, username, pw := s.createGuest(t)
	login := func() string {
		t.Helper()
		tok, err := s.kc.PasswordGrant(s.ctx, clientGuest, s.env.GuestLoginSecret, username, pw, "")
		if err != nil {
			t.Fatalf("guest-login: %v", err)
		}
		return tok.AccessToken
	}
	const minRefresh = time.Second
	v, fetches := s.verifier(t, func(c *jwtauth.Config) { c.MinRefreshInterval = minRefresh })
	old := login()
	if _, err := v.Verify(s.ctx, old); err != nil {
		t.Fatalf("token before rotation: %v", err)
	}
	fetched := time.Now()
	before := fetches.jwks.Load()

	// Rotate: a new rsa-generated provider with a higher priority becomes the
	// realm's active RS256 key.
	realmID, err := s.kc.RealmID(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.kc.Admin(s.ctx, http.MethodPost, "/components", map[string]any{
		"name":         "e2e-rotated-" + randHex(4),
		"providerId":   "rsa-generated",
		"providerType": "org.keycloak.keys.KeyProvider",
		"parentId":     realmID,
		"config": map[string][]string{
			"priority": {"1000"}, "keySize": {"2048"}, "algorithm": {"RS256"},
			"active": {"true"}, "enabled": {"true"},
		},
	}, nil)
	if err != nil {
		t.Fatalf("add key provider: %v", err)
	}
	loc := h.Get("Location")
	t.Cleanup(func() {
		_, _ = s.kc.Admin(context.Background(), http.MethodDelete, "/components/"+loc[strings.LastIndexByte(loc, '/')+1:], nil, nil)
	})

	rotated := login()
	oldKID, newKID := segment(t, old, 0)["kid"], segment(t, rotated, 0)["kid"]
	if newKID == oldKID {
		t.Fatalf("token after rotation still carries kid %v", oldKID)
	}
	// An unknown kid refreshes at most once per MinRefreshInterval.
	time.Sleep(time.Until(fetched.Add(minRefresh + 100*time.Millisecond)))
	if _, err := v.Verify(s.ctx, rotated); err != nil {
		t.Fatalf("token with the new kid: %v", err)
	}
	if n := fetches.jwks.Load() - before; n != 1 {
		t.Fatalf("JWKS fetched %d more times for the new kid, want exactly 1", n)
	}
	// The old key stays published: its tokens still verify, with no fetch.
	if _, err := v.Verify(s.ctx, old); err != nil {
		t.Errorf("token signed with the previous key: %v", err)
	}
	if _, err := v.Verify(s.ctx, rotated); err != nil {
		t.Errorf("new token again: %v", err)
	}
	if n := fetches.jwks.Load() - before; n != 1 {
		t.Errorf("JWKS fetched %d more times in all, want 1", n)
	}
}

// janBrowserFlow is realm jan's browser flow as the admin API lists it
// (TestRealmSettingsMatchTheDesign; the WebAuthn test checks its realm copy
// against realm jan's).
var janBrowserFlow = []string{
	"auth-cookie ALTERNATIVE",
	"flow jan browser forms ALTERNATIVE",
	"  auth-username-password-form REQUIRED",
	// an admin with a security key: the key is required
	"  flow jan browser admin security key CONDITIONAL",
	"    conditional-user-role REQUIRED {condUserRole=admin negate=false}",
	"    conditional-user-configured REQUIRED",
	"    webauthn-authenticator REQUIRED",
	// an admin without one: refused, unless an administrator issued
	// webauthn-register (it runs right after the flow)
	"  flow jan browser admin without a security key CONDITIONAL",
	"    conditional-user-role REQUIRED {condUserRole=admin negate=false}",
	"    conditional-sub-flow-executed REQUIRED {check_result=not-executed flow_to_check=jan browser admin security key}",
	"    edgeguard-condition-required-action REQUIRED {not=true required_action=webauthn-register}",
	"    deny-access-authenticator REQUIRED",
	// everyone else: OTP when they configured one
	"  flow jan browser user OTP CONDITIONAL",
	"    conditional-user-configured REQUIRED",
	"    conditional-user-role REQUIRED {condUserRole=admin negate=true}",
	"    auth-otp-form REQUIRED",
}

package identity

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestReservedHeadersMatchInAnyCaseAndWithUnderscores(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"X-User-ID", true},
		{"x-user-id", true},
		{"x_user_id", true},
		{"X_USER_ID", true},
		{"X-User-Subject", true},
		{"x-auth-method", true},
		{"X_Auth_Method", true},
		{"X-API-Key-ID", true},
		{"x_api_key_id", true},
		{"X-Consumer-ID", true},
		{"X-Consumer-Custom-ID", true},
		{"X-Credential-Identifier", true},
		{"X-Anonymous-Consumer", true},
		{"X-Edge-Identity", true},
		{"x_edge_identity", true},
		{"X-Userinfo", true},
		{"X-Access-Token", true},
		{"X-ID-Token", true},
		{"X-Authenticated-Userid", true},
		{"X-Forwarded-User", true},
		{"X-User", true},
		{"X-Request-ID", false},
		{"X-API-Key", false}, // a credential, read by keycloak-apikey, not an identity header
		{"Authorization", false},
		{"X-Users", false},
		{"X-Forwarded-For", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := IsReserved(tc.name); got != tc.want {
			t.Errorf("IsReserved(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStripListRemovesReservedAndConnectionNamedHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string][]string
		want    []string
	}{
		{"nothing to strip", map[string][]string{"accept": {"*/*"}, "authorization": {"Bearer x"}}, nil},
		{"spoofed identity", map[string][]string{"x-user-id": {"victim"}, "x_auth_method": {"apikey"}, "accept": {"*/*"}}, []string{"x-user-id", "x_auth_method"}},
		{"connection names a reserved header", map[string][]string{"connection": {"X-User-ID"}, "x-user-id": {"v"}}, []string{"x-user-id"}},
		{"connection names another header", map[string][]string{"connection": {"close, X-Foo"}, "x-foo": {"1"}, "x-bar": {"2"}}, []string{"x-foo"}},
		{"connection tokens with underscores", map[string][]string{"connection": {"x_secret_hop"}, "x-secret-hop": {"1"}}, []string{"x-secret-hop"}},
		{"upgrade is left to the proxy", map[string][]string{"connection": {"Upgrade"}, "upgrade": {"websocket"}}, nil},
		{"multiple connection values", map[string][]string{"connection": {"a", "b"}, "a": {"1"}, "b": {"2"}}, []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := StripList(tc.headers)
			sort.Strings(got)
			want := slices.Clone(tc.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("StripList = %v, want %v", got, want)
			}
		})
	}
}

func TestHeaderValueNeverCarriesControlBytes(t *testing.T) {
	for _, in := range []string{"alice", "a\r\nX-User-ID: root", "jürgen", "tab\there", "\x00"} {
		out := HeaderValue(in)
		for i := 0; i < len(out); i++ {
			if out[i] < 0x20 || out[i] > 0x7e {
				t.Fatalf("HeaderValue(%q) = %q contains byte %#x", in, out, out[i])
			}
		}
	}
	if HeaderValue("alice") != "alice" {
		t.Fatal("printable ASCII must pass unchanged")
	}
}

func TestUpstreamHeadersForJWTAndAPIKey(t *testing.T) {
	id := &Identity{Subject: "u1", Username: "alice", RealmRoles: []string{"user", "a,b"}, AuthMethod: MethodJWT}
	got := map[string]string{}
	id.UpstreamHeaders(func(k, v string) { got[k] = v })
	want := map[string]string{HeaderUserID: "u1", HeaderUsername: "alice", HeaderRoles: "user,a%2Cb", HeaderGuest: "false", HeaderAuthMethod: "jwt"}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	id = &Identity{Subject: "u2", Guest: true, AuthMethod: MethodAPIKey, APIKeyID: "abcd1234"}
	got = map[string]string{}
	id.UpstreamHeaders(func(k, v string) { got[k] = v })
	if got[HeaderAPIKeyID] != "abcd1234" || got[HeaderGuest] != "true" || got[HeaderAuthMethod] != "apikey" {
		t.Fatalf("api key headers: %v", got)
	}
	for k := range got {
		if !IsReserved(k) {
			t.Errorf("upstream header %s is not reserved: clients could spoof it", k)
		}
	}
}

func TestPolicyAuthorize(t *testing.T) {
	user := &Identity{Subject: "u", RealmRoles: []string{"user"}, Scopes: []string{"openid", "profile"}, AuthMethod: MethodJWT}
	admin := &Identity{Subject: "a", RealmRoles: []string{"user", "admin"}, AuthMethod: MethodJWT}
	guest := &Identity{Subject: "g", RealmRoles: []string{"guest"}, Guest: true, AuthMethod: MethodJWT}
	guestByFlag := &Identity{Subject: "g2", Guest: true, AuthMethod: MethodJWT}
	key := &Identity{Subject: "k", RealmRoles: []string{"user"}, AuthMethod: MethodAPIKey, APIKeyID: "kid"}

	tests := []struct {
		name   string
		policy Policy
		id     *Identity
		want   Denial
	}{
		{"zero policy allows", Policy{}, user, Allowed},
		{"any-of roles", Policy{RequiredRoles: []string{"admin", "user"}}, user, Allowed},
		{"any-of roles missing", Policy{RequiredRoles: []string{"admin"}}, user, DenyInsufficientRole},
		{"all-of roles", Policy{RequiredRoles: []string{"admin", "user"}, RolesMode: RolesAll}, admin, Allowed},
		{"all-of roles missing one", Policy{RequiredRoles: []string{"admin", "user"}, RolesMode: RolesAll}, user, DenyInsufficientRole},
		{"forbidden guest role", Policy{ForbiddenRoles: []string{"guest"}}, guest, DenyForbiddenRole},
		{"forbidden guest by flag", Policy{ForbiddenRoles: []string{"guest"}}, guestByFlag, DenyForbiddenRole},
		{"forbidden wins over required", Policy{RequiredRoles: []string{"guest"}, ForbiddenRoles: []string{"guest"}}, guest, DenyForbiddenRole},
		{"scopes present", Policy{RequiredScopes: []string{"openid", "profile"}}, user, Allowed},
		{"scope missing", Policy{RequiredScopes: []string{"email"}}, user, DenyInsufficientScope},
		{"jwt only refuses api key", Policy{AuthMethods: []string{MethodJWT}}, key, DenyAuthMethod},
		{"jwt only allows jwt", Policy{AuthMethods: []string{MethodJWT}}, user, Allowed},
		{"auth method checked first", Policy{AuthMethods: []string{MethodJWT}, RequiredRoles: []string{"admin"}}, key, DenyAuthMethod},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.policy.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tc.policy.Authorize(tc.id); got != tc.want {
				t.Fatalf("Authorize = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPolicyValidateRejectsBadConfig(t *testing.T) {
	for _, p := range []Policy{
		{RolesMode: "some"},
		{AuthMethods: []string{"basic"}},
		{RequiredRoles: []string{""}},
	} {
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), "invalid policy") {
			t.Errorf("Validate(%+v) = %v, want invalid policy", p, err)
		}
	}
}

func FuzzStripList(f *testing.F) {
	for _, s := range []string{"X-User-ID", "x_user_id", "Connection", "X-User-ID, close", "upgrade,,,", "\x00\xff", "X-Auth-", strings.Repeat("a,", 500)} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		headers := map[string][]string{name: {value}, "connection": {value}}
		for _, n := range StripList(headers) {
			if _, ok := headers[n]; !ok {
				t.Fatalf("StripList returned %q which is not a header", n)
			}
		}
		if IsReserved(name) && !slices.Contains(StripList(headers), name) {
			t.Fatalf("reserved %q not stripped", name)
		}
	})
}

func BenchmarkIsReserved(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		IsReserved("X-Forwarded-Proto")
	}
}

func TestChallenge(t *testing.T) {
	for _, tt := range []struct{ realm, attr, want string }{
		{"edgeguard", "", `Bearer realm="edgeguard"`},
		{"edgeguard", ChallengeInvalidToken, `Bearer realm="edgeguard", error="invalid_token"`},
		{"jan", ChallengeInsufficientScope, `Bearer realm="jan", error="insufficient_scope"`},
	} {
		if got := Challenge(tt.realm, tt.attr); got != tt.want {
			t.Errorf("Challenge(%q, %q) = %q, want %q", tt.realm, tt.attr, got, tt.want)
		}
	}
}

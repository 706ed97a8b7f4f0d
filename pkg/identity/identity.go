// Package identity defines who a request is (the Identity an authenticator
// produces), the upstream identity header contract of the edge, and the route
// authorization policy that every plugin and service applies the same way.
//
// It is not an authenticator: it never parses tokens or keys, and nothing in it
// reads identity from request headers. Identity travels inside the edge only
// through Kong's kong.ctx.shared (or a request context); headers are written
// for upstreams and stripped from clients.
package identity

import (
	"slices"
	"time"
)

// Auth methods, the values of X-Auth-Method and of Policy.AuthMethods.
const (
	MethodJWT    = "jwt"
	MethodAPIKey = "apikey"
)

// RoleGuest is the realm role that marks a guest session.
const RoleGuest = "guest"

// Identity is an authenticated principal. Values produced by an authenticator
// may be shared between requests (a verified-token cache hands out the same
// pointer): treat them as immutable.
type Identity struct {
	Subject     string              `json:"sub"`
	Username    string              `json:"username,omitempty"`
	Email       string              `json:"email,omitempty"`
	Issuer      string              `json:"iss,omitempty"`
	ClientID    string              `json:"azp,omitempty"`
	RealmRoles  []string            `json:"roles,omitempty"`
	ClientRoles map[string][]string `json:"client_roles,omitempty"`
	Scopes      []string            `json:"scopes,omitempty"`
	Guest       bool                `json:"guest,omitempty"`
	AuthMethod  string              `json:"method"`
	APIKeyID    string              `json:"key_id,omitempty"`
	// ExpiresAt is when the credential stops being valid (zero: unknown).
	ExpiresAt time.Time `json:"exp,omitzero"`
	// Cnf is the credential's key binding (RFC 7800 cnf): set for a
	// DPoP-bound access token (RFC 9449), nil for a bearer credential. An
	// identity with Cnf is valid only with a proof of that key, which the
	// edge checks (pkg/dpop) before it admits the request.
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is a key binding.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint (base64url) of the key the
	// token is bound to (cnf.jkt).
	JKT string `json:"jkt"`
}

// HasRole reports whether id carries the realm role.
func (id *Identity) HasRole(role string) bool {
	return slices.Contains(id.RealmRoles, role)
}

// HasScope reports whether id carries the OAuth scope.
func (id *Identity) HasScope(scope string) bool {
	return slices.Contains(id.Scopes, scope)
}

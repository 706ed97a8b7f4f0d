package identity

import (
	"errors"
	"fmt"
)

// Denial is the stable reason code of an authorization refusal (HTTP 403).
type Denial string

// Denial reasons. The empty Denial means allowed.
const (
	Allowed               Denial = ""
	DenyInsufficientRole  Denial = "insufficient_role"
	DenyForbiddenRole     Denial = "forbidden_role"
	DenyInsufficientScope Denial = "insufficient_scope"
	DenyAuthMethod        Denial = "auth_method_not_allowed"
)

// Role matching modes of Policy.RolesMode.
const (
	RolesAny = "any"
	RolesAll = "all"
)

// ErrInvalidPolicy is wrapped by Policy.Validate errors.
var ErrInvalidPolicy = errors.New("invalid policy")

// Policy is what a route requires of an authenticated identity. The zero
// Policy allows every authenticated identity.
type Policy struct {
	// RequiredRoles are realm roles; with RolesMode "any" (default) one of
	// them suffices, with "all" every one is needed.
	RequiredRoles []string
	RolesMode     string
	// ForbiddenRoles refuse an identity carrying any of them (e.g. guest).
	// The role "guest" also matches an identity whose Guest flag is set.
	ForbiddenRoles []string
	// RequiredScopes must all be present in the token's scope.
	RequiredScopes []string
	// AuthMethods lists the accepted credential kinds (jwt, apikey); empty
	// accepts both. API-key management routes use [jwt]: a leaked key must
	// never mint keys.
	AuthMethods []string
}

// Validate checks the policy without side effects.
func (p *Policy) Validate() error {
	switch p.RolesMode {
	case "", RolesAny, RolesAll:
	default:
		return fmt.Errorf("%w: roles mode %q is not any or all", ErrInvalidPolicy, p.RolesMode)
	}
	for _, m := range p.AuthMethods {
		if m != MethodJWT && m != MethodAPIKey {
			return fmt.Errorf("%w: auth method %q is not jwt or apikey", ErrInvalidPolicy, m)
		}
	}
	for _, lists := range [][]string{p.RequiredRoles, p.ForbiddenRoles, p.RequiredScopes} {
		for _, v := range lists {
			if v == "" {
				return fmt.Errorf("%w: empty role or scope name", ErrInvalidPolicy)
			}
		}
	}
	return nil
}

func (id *Identity) hasRoleOrGuest(role string) bool {
	if role == RoleGuest && id.Guest {
		return true
	}
	return id.HasRole(role)
}

// Authorize applies the policy to id and returns Allowed or the reason of the
// refusal. Checks run in a fixed order: auth method, forbidden roles,
// required roles, required scopes.
func (p *Policy) Authorize(id *Identity) Denial {
	if len(p.AuthMethods) > 0 && !contains(p.AuthMethods, id.AuthMethod) {
		return DenyAuthMethod
	}
	for _, r := range p.ForbiddenRoles {
		if id.hasRoleOrGuest(r) {
			return DenyForbiddenRole
		}
	}
	if len(p.RequiredRoles) > 0 {
		if p.RolesMode == RolesAll {
			for _, r := range p.RequiredRoles {
				if !id.hasRoleOrGuest(r) {
					return DenyInsufficientRole
				}
			}
		} else {
			ok := false
			for _, r := range p.RequiredRoles {
				if id.hasRoleOrGuest(r) {
					ok = true
					break
				}
			}
			if !ok {
				return DenyInsufficientRole
			}
		}
	}
	for _, s := range p.RequiredScopes {
		if !id.HasScope(s) {
			return DenyInsufficientScope
		}
	}
	return Allowed
}

package keycloak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
)

var _ guests.Directory = (*Source)(nil)

// GuestAttribute marks guests (declared in the realm's user profile, so
// Keycloak keeps it).
const GuestAttribute = "guest"

// admin runs one admin call with the service account's token; a 401 drops
// the cached token and the call is tried once more with a new one.
func (s *Source) admin(ctx context.Context, call func(token string) error) error {
	for attempt := 0; ; attempt++ {
		token, err := s.accessToken(ctx)
		if err != nil {
			return err
		}
		err = call(token)
		if code(err) == http.StatusUnauthorized && attempt == 0 {
			s.dropToken(token)
			continue
		}
		return err
	}
}

// CreateGuest implements guests.Directory: one POST creates the enabled user
// in the guest group with attribute guest=true and the password; then the
// realm's default-roles composite (which brings role user) is unmapped. If
// that fails, the new user's id comes back with the error.
func (s *Source) CreateGuest(ctx context.Context, username string, password guests.Secret) (string, error) {
	pw := string(password)
	user := gocloak.User{
		Username:    &username,
		Enabled:     gocloak.BoolP(true),
		Groups:      &[]string{"/" + s.cfg.GuestGroup},
		Attributes:  &map[string][]string{GuestAttribute: {"true"}},
		Credentials: &[]gocloak.CredentialRepresentation{{Type: gocloak.StringP("password"), Value: &pw, Temporary: gocloak.BoolP(false)}},
	}
	var id string
	err := s.admin(ctx, func(token string) error {
		var err error
		id, err = s.gc.CreateUser(ctx, token, s.cfg.Realm, user)
		return err
	})
	if err != nil {
		return "", &lookupError{op: "create guest", err: err}
	}
	if id == "" || !safeName(id) {
		return "", errors.New("keycloak: create guest: no user id in the answer")
	}
	if err := s.dropDefaultRoles(ctx, id); err != nil {
		return id, err
	}
	return id, nil
}

// dropDefaultRoles unmaps default-roles-<realm> from a user. The service
// account cannot read roles by name, so the mapping itself supplies the
// role's id.
func (s *Source) dropDefaultRoles(ctx context.Context, id string) error {
	want := "default-roles-" + s.cfg.Realm
	uid := url.PathEscape(id)
	var mapped []*gocloak.Role
	err := s.admin(ctx, func(token string) error {
		var err error
		mapped, err = s.gc.GetRealmRolesByUserID(ctx, token, s.cfg.Realm, uid)
		return err
	})
	if err != nil {
		return &lookupError{op: "get guest role mappings", err: err}
	}
	i := slices.IndexFunc(mapped, func(r *gocloak.Role) bool { return r != nil && r.Name != nil && *r.Name == want })
	if i < 0 {
		return nil // nothing to remove
	}
	role := *mapped[i]
	err = s.admin(ctx, func(token string) error {
		return s.gc.DeleteRealmRoleFromUser(ctx, token, s.cfg.Realm, uid, []gocloak.Role{{ID: role.ID, Name: role.Name}})
	})
	if err != nil {
		return &lookupError{op: "remove default roles from guest", err: err}
	}
	return nil
}

// DeleteUser implements guests.Directory (404 is guests.ErrUserNotFound).
func (s *Source) DeleteUser(ctx context.Context, id string) error {
	if id == "" || len(id) > 255 {
		return guests.ErrUserNotFound
	}
	err := s.admin(ctx, func(token string) error {
		return s.gc.DeleteUser(ctx, token, s.cfg.Realm, url.PathEscape(id))
	})
	switch {
	case err == nil:
		return nil
	case code(err) == http.StatusNotFound:
		return guests.ErrUserNotFound
	}
	return &lookupError{op: "delete user", err: err}
}

// ListGuests implements guests.Directory: users whose attribute guest is
// "true" (search q=guest:true), full representation (attributes and
// createdTimestamp).
func (s *Source) ListGuests(ctx context.Context, first, max int) ([]guests.User, error) {
	if first < 0 || max < 1 {
		return nil, fmt.Errorf("keycloak: list guests: bad page %d+%d", first, max)
	}
	var users []*gocloak.User
	err := s.admin(ctx, func(token string) error {
		var err error
		users, err = s.gc.GetUsers(ctx, token, s.cfg.Realm, gocloak.GetUsersParams{
			Q:                   gocloak.StringP(GuestAttribute + ":true"),
			First:               &first,
			Max:                 &max,
			BriefRepresentation: gocloak.BoolP(false),
		})
		return err
	})
	if err != nil {
		return nil, &lookupError{op: "list guests", err: err}
	}
	out := make([]guests.User, 0, len(users))
	for _, u := range users {
		if u == nil || u.ID == nil {
			continue
		}
		g := guests.User{ID: *u.ID}
		if u.Username != nil {
			g.Username = *u.Username
		}
		if u.CreatedTimestamp != nil {
			g.CreatedAt = time.UnixMilli(*u.CreatedTimestamp)
		}
		if u.Attributes != nil {
			g.Guest = slices.Contains((*u.Attributes)[GuestAttribute], "true")
		}
		out = append(out, g)
	}
	return out, nil
}

// GuestTokens is the guests.Issuer: the token and revocation endpoints of
// the realm as the confidential guest-login client (client_secret_basic).
// Its tokens are never logged; errors carry HTTP statuses only.
type GuestTokens struct {
	cfg Config
	gc  *gocloak.GoCloak
}

var _ guests.Issuer = (*GuestTokens)(nil)

// NewGuestTokens checks cfg (ClientID and ClientSecret are the guest-login
// client's) and returns the issuer. No I/O.
func NewGuestTokens(cfg Config) (*GuestTokens, error) {
	src, err := New(cfg) // same checks and defaults
	if err != nil {
		return nil, err
	}
	return &GuestTokens{cfg: src.cfg, gc: src.gc}, nil
}

func tokens(j *gocloak.JWT) *guests.Tokens {
	if j == nil {
		return nil
	}
	return &guests.Tokens{AccessToken: guests.Secret(j.AccessToken), RefreshToken: guests.Secret(j.RefreshToken),
		ExpiresIn: j.ExpiresIn, RefreshExpiresIn: j.RefreshExpiresIn, TokenType: j.TokenType}
}

// PasswordGrant implements guests.Issuer. No scope is asked for, so
// Keycloak issues no ID token.
func (g *GuestTokens) PasswordGrant(ctx context.Context, username string, password guests.Secret) (*guests.Tokens, error) {
	pw := string(password)
	j, err := g.gc.GetToken(ctx, g.cfg.Realm, gocloak.TokenOptions{
		ClientID: &g.cfg.ClientID, ClientSecret: &g.cfg.ClientSecret,
		GrantType: gocloak.StringP("password"), Username: &username, Password: &pw,
	})
	if err != nil {
		return nil, fmt.Errorf("keycloak: password grant: %s", status(err))
	}
	return tokens(j), nil
}

// Refresh implements guests.Issuer: Keycloak answers 400 (invalid_grant)
// for a refresh token it refuses — expired, revoked, rotated away, another
// client's, garbage — which is guests.ErrInvalidGrant.
func (g *GuestTokens) Refresh(ctx context.Context, refreshToken guests.Secret) (*guests.Tokens, error) {
	j, err := g.gc.RefreshToken(ctx, string(refreshToken), g.cfg.ClientID, g.cfg.ClientSecret, g.cfg.Realm)
	if err != nil {
		if code(err) == http.StatusBadRequest {
			return nil, guests.ErrInvalidGrant
		}
		return nil, fmt.Errorf("keycloak: refresh grant: %s", status(err))
	}
	return tokens(j), nil
}

// Revoke implements guests.Issuer (RFC 7009 revocation endpoint: revoking
// a refresh token ends the client's session; an unknown token is answered
// 200 as well).
func (g *GuestTokens) Revoke(ctx context.Context, refreshToken guests.Secret) error {
	err := g.gc.RevokeToken(ctx, g.cfg.Realm, g.cfg.ClientID, g.cfg.ClientSecret, string(refreshToken))
	if err != nil {
		return fmt.Errorf("keycloak: revoke: %s", status(err))
	}
	return nil
}

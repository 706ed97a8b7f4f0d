package keycloak_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/kctest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keycloak"
)

func guestSetup(t *testing.T) (*kctest.Fake, *keycloak.Source, *keycloak.GuestTokens) {
	t.Helper()
	f := kctest.New(t)
	src, err := keycloak.New(keycloak.Config{URL: f.URL, Realm: kctest.Realm, ClientID: kctest.ServiceClient, ClientSecret: kctest.ServiceSecret})
	if err != nil {
		t.Fatal(err)
	}
	gt, err := keycloak.NewGuestTokens(keycloak.Config{URL: f.URL, Realm: kctest.Realm, ClientID: kctest.GuestClient, ClientSecret: kctest.GuestClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	return f, src, gt
}

const pw = guests.Secret("Guest-Password-0123456789abcdef")

func TestCreateGuestMakesAGuestWithoutDefaultRoles(t *testing.T) {
	f, src, gt := guestSetup(t)
	ctx := context.Background()
	id, err := src.CreateGuest(ctx, "guest-1", pw)
	if err != nil {
		t.Fatal(err)
	}
	users := f.Users()
	if len(users) != 1 {
		t.Fatalf("users %+v", users)
	}
	u := users[0]
	if u.ID != id || u.Username != "guest-1" || !u.Enabled || !slices.Equal(u.Groups, []string{"/guests"}) ||
		!slices.Equal(u.Attributes["guest"], []string{"true"}) || u.Password != string(pw) || len(u.RealmRoles) != 0 {
		t.Fatalf("guest %+v", u)
	}
	toks, err := gt.PasswordGrant(ctx, "guest-1", pw)
	if err != nil || toks.AccessToken == "" || toks.RefreshToken == "" || toks.ExpiresIn != 300 || toks.TokenType != "Bearer" {
		t.Fatalf("password grant: %+v %v", toks, err)
	}
}

func TestCreateGuestFailuresCarryStatusesNotBodies(t *testing.T) {
	for _, op := range []string{kctest.OpServiceLogin, kctest.OpCreate, kctest.OpRoles, kctest.OpUnmapRoles} {
		t.Run(op, func(t *testing.T) {
			f, src, _ := guestSetup(t)
			f.Fail(op, http.StatusInternalServerError)
			id, err := src.CreateGuest(context.Background(), "guest-1", pw)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), kctest.LeakMarker) || strings.Contains(err.Error(), string(pw)) {
				t.Fatalf("error carries Keycloak's body or the password: %v", err)
			}
			created := op == kctest.OpRoles || op == kctest.OpUnmapRoles
			if created != (id != "") {
				t.Fatalf("id %q after %s failed", id, op)
			}
		})
	}
}

func TestAdminCallsLogInAgainAfter401(t *testing.T) {
	f, src, _ := guestSetup(t)
	ctx := context.Background()
	if _, err := src.CreateGuest(ctx, "guest-1", pw); err != nil {
		t.Fatal(err)
	}
	// Another login rotates the fake's only valid token, so the Source's
	// cached token now meets a 401 (as after a Keycloak restart).
	f2 := f.Calls(kctest.OpServiceLogin)
	other, _ := keycloak.New(keycloak.Config{URL: f.URL, Realm: kctest.Realm, ClientID: kctest.ServiceClient, ClientSecret: kctest.ServiceSecret})
	if _, err := other.ListGuests(ctx, 0, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ListGuests(ctx, 0, 10); err != nil {
		t.Fatalf("after 401: %v", err)
	}
	if n := f.Calls(kctest.OpServiceLogin) - f2; n != 2 {
		t.Fatalf("%d service logins, want 2 (other + the retry)", n)
	}
}

func TestListAndDeleteGuests(t *testing.T) {
	f, src, _ := guestSetup(t)
	ctx := context.Background()
	created := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.AddUser(kctest.User{ID: "u1", Username: "guest-a", Enabled: true, Attributes: map[string][]string{"guest": {"true"}}, Created: created})
	f.AddUser(kctest.User{ID: "u2", Username: "guest-b", Enabled: true, Attributes: map[string][]string{"guest": {"true"}}, Created: created})
	f.AddUser(kctest.User{ID: "u3", Username: "alice", Enabled: true, Created: created})
	page, err := src.ListGuests(ctx, 0, 1)
	if err != nil || len(page) != 1 || page[0].ID != "u1" || !page[0].Guest || page[0].Username != "guest-a" || !page[0].CreatedAt.Equal(created) {
		t.Fatalf("page 1: %+v %v", page, err)
	}
	page, err = src.ListGuests(ctx, 1, 5)
	if err != nil || len(page) != 1 || page[0].ID != "u2" {
		t.Fatalf("page 2: %+v %v", page, err)
	}
	if err := src.DeleteUser(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := src.DeleteUser(ctx, "u1"); !errors.Is(err, guests.ErrUserNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := src.DeleteUser(ctx, "../../clients"); !errors.Is(err, guests.ErrUserNotFound) {
		t.Fatalf("path escape: %v", err)
	}
	if _, err := src.ListGuests(ctx, -1, 5); err == nil {
		t.Fatal("negative offset accepted")
	}
}

func TestGuestTokensRefreshAndRevoke(t *testing.T) {
	f, src, gt := guestSetup(t)
	ctx := context.Background()
	if _, err := src.CreateGuest(ctx, "guest-1", pw); err != nil {
		t.Fatal(err)
	}
	toks, err := gt.PasswordGrant(ctx, "guest-1", pw)
	if err != nil {
		t.Fatal(err)
	}
	next, err := gt.Refresh(ctx, toks.RefreshToken)
	if err != nil || next.AccessToken == "" || next.RefreshToken == toks.RefreshToken {
		t.Fatalf("refresh: %+v %v", next, err)
	}
	if _, err := gt.Refresh(ctx, toks.RefreshToken); !errors.Is(err, guests.ErrInvalidGrant) {
		t.Fatalf("reused refresh token: %v", err)
	}
	if _, err := gt.Refresh(ctx, "garbage"); !errors.Is(err, guests.ErrInvalidGrant) {
		t.Fatalf("garbage: %v", err)
	}
	if err := gt.Revoke(ctx, next.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := gt.Refresh(ctx, next.RefreshToken); !errors.Is(err, guests.ErrInvalidGrant) {
		t.Fatalf("refresh after revoke: %v", err)
	}
	if err := gt.Revoke(ctx, "unknown"); err != nil {
		t.Fatalf("revoking an unknown token: %v", err)
	}
	if _, err := gt.PasswordGrant(ctx, "guest-1", "wrong-password-123"); err == nil {
		t.Fatal("wrong password accepted")
	}
	for _, op := range []string{kctest.OpRefresh, kctest.OpRevoke, kctest.OpPassword} {
		f.Fail(op, http.StatusServiceUnavailable)
	}
	_, errR := gt.Refresh(ctx, "x")
	errV := gt.Revoke(ctx, "x")
	_, errP := gt.PasswordGrant(ctx, "guest-1", pw)
	for _, err := range []error{errR, errV, errP} {
		if err == nil || errors.Is(err, guests.ErrInvalidGrant) || strings.Contains(err.Error(), kctest.LeakMarker) {
			t.Fatalf("outage: %v", err)
		}
	}
	// a wrong client secret is a failure of ours, not the caller's token
	bad, _ := keycloak.NewGuestTokens(keycloak.Config{URL: f.URL, Realm: kctest.Realm, ClientID: kctest.GuestClient, ClientSecret: "wrong-secret-0123456789"})
	f.Fail(kctest.OpRefresh, 0)
	if _, err := bad.Refresh(ctx, "x"); err == nil || errors.Is(err, guests.ErrInvalidGrant) || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("bad client secret: %v", err)
	}
}

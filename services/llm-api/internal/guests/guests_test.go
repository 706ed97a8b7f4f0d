package guests_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/rs/zerolog"
)

// memDir is an in-memory Directory.
type memDir struct {
	mu        sync.Mutex
	users     map[string]guests.User
	passwords map[string]guests.Secret
	order     []string
	failOn    string // "create", "create-after", "delete", "list"
	deleted   []string
	listCalls int
	ctxErr    error // the context error seen by the last call
}

func newDir() *memDir {
	return &memDir{users: map[string]guests.User{}, passwords: map[string]guests.Secret{}}
}

func (d *memDir) CreateGuest(ctx context.Context, username string, pw guests.Secret) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ctxErr = ctx.Err()
	if d.failOn == "create" {
		return "", errors.New("keycloak: create guest: HTTP 500")
	}
	id := fmt.Sprintf("id-%d", len(d.order))
	d.users[id] = guests.User{ID: id, Username: username, CreatedAt: time.Now(), Guest: true}
	d.passwords[username] = pw
	d.order = append(d.order, id)
	if d.failOn == "create-after" {
		return id, errors.New("keycloak: remove default roles from guest: HTTP 500")
	}
	return id, nil
}

func (d *memDir) DeleteUser(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ctxErr = ctx.Err()
	if d.failOn == "delete" {
		return errors.New("keycloak: delete user: HTTP 503")
	}
	if _, ok := d.users[id]; !ok {
		return guests.ErrUserNotFound
	}
	delete(d.users, id)
	d.deleted = append(d.deleted, id)
	return nil
}

func (d *memDir) ListGuests(_ context.Context, first, max int) ([]guests.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listCalls++
	if d.failOn == "list" {
		return nil, errors.New("keycloak: list guests: HTTP 503")
	}
	var out []guests.User
	i := 0
	for _, id := range d.order {
		u, ok := d.users[id]
		if !ok {
			continue
		}
		if i >= first && len(out) < max {
			out = append(out, u)
		}
		i++
	}
	return out, nil
}

// memIssuer is an Issuer that knows the directory's passwords.
type memIssuer struct {
	dir     *memDir
	fail    error
	revoked []guests.Secret
}

func (m *memIssuer) PasswordGrant(_ context.Context, username string, pw guests.Secret) (*guests.Tokens, error) {
	if m.fail != nil {
		return nil, m.fail
	}
	m.dir.mu.Lock()
	defer m.dir.mu.Unlock()
	if m.dir.passwords[username] != pw {
		return nil, errors.New("keycloak: password grant: HTTP 401")
	}
	return &guests.Tokens{AccessToken: "at-" + guests.Secret(username), RefreshToken: "rt-" + guests.Secret(username), ExpiresIn: 300, TokenType: "Bearer"}, nil
}

func (m *memIssuer) Refresh(_ context.Context, rt guests.Secret) (*guests.Tokens, error) {
	if m.fail != nil {
		return nil, m.fail
	}
	if !strings.HasPrefix(string(rt), "rt-") {
		return nil, guests.ErrInvalidGrant
	}
	return &guests.Tokens{AccessToken: "at2", RefreshToken: "rt-2", ExpiresIn: 300}, nil
}

func (m *memIssuer) Revoke(_ context.Context, rt guests.Secret) error {
	if m.fail != nil {
		return m.fail
	}
	m.revoked = append(m.revoked, rt)
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)} }
func limits(t *testing.T, spec string) []ratelimit.Limit {
	t.Helper()
	l, err := ratelimit.ParseLimits(spec)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newService(t *testing.T, dir *memDir, iss *memIssuer, clk *clock, maxPerHour int) *guests.Service {
	t.Helper()
	lim, err := ratelimit.NewLocal(ratelimit.LocalConfig{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	s, err := guests.New(guests.Config{Directory: dir, Issuer: iss, Limiter: lim, PerIP: limits(t, "5/h"),
		MaxPerHour: maxPerHour, SessionPerIP: limits(t, "3/min"), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoginCreatesAGuestWithARandomPasswordAndMintsItsTokens(t *testing.T) {
	dir := newDir()
	s := newService(t, dir, &memIssuer{dir: dir}, newClock(), 100)
	toks, err := s.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dir.order) != 1 {
		t.Fatalf("%d users", len(dir.order))
	}
	u := dir.users[dir.order[0]]
	uuid := strings.TrimPrefix(u.Username, guests.UsernamePrefix)
	if !strings.HasPrefix(u.Username, "guest-") || len(uuid) != 36 || uuid[14] != '4' {
		t.Fatalf("username %q is not guest-<uuid v4>", u.Username)
	}
	pw := dir.passwords[u.Username]
	if len(pw) < 40 || len(pw) > 128 {
		t.Fatalf("password of %d characters", len(pw))
	}
	if toks.AccessToken != "at-"+guests.Secret(u.Username) {
		t.Fatal("tokens are not the guest's")
	}
	// the next guest gets another name and password
	if _, err := s.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	u2 := dir.users[dir.order[1]]
	if u2.Username == u.Username || dir.passwords[u2.Username] == pw {
		t.Fatal("names or passwords repeat")
	}
}

func TestFailedLoginsLeaveNoOrphans(t *testing.T) {
	cases := []struct {
		name       string
		failOn     string
		issuerFail error
		created    int
		remaining  int
	}{
		{"creation fails", "create", nil, 0, 0},
		{"role removal fails after creation", "create-after", nil, 1, 0},
		{"token fails", "", errors.New("keycloak: password grant: HTTP 503"), 1, 0},
		{"token fails and so does the deletion (cleanup's job)", "delete", errors.New("keycloak: password grant: HTTP 503"), 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := newDir()
			dir.failOn = c.failOn
			s := newService(t, dir, &memIssuer{dir: dir, fail: c.issuerFail}, newClock(), 100)
			toks, err := s.Login(context.Background())
			if !errors.Is(err, guests.ErrIdP) || toks != nil {
				t.Fatalf("got %v %v, want ErrIdP", toks, err)
			}
			if strings.Contains(err.Error(), "HTTP") {
				t.Fatalf("error %q carries Keycloak's details to the client", err)
			}
			if len(dir.order) != c.created || len(dir.users) != c.remaining {
				t.Fatalf("created %d, remaining %d", len(dir.order), len(dir.users))
			}
		})
	}
}

func TestLoginFinishesWhenTheClientGoesAway(t *testing.T) {
	dir := newDir()
	s := newService(t, dir, &memIssuer{dir: dir, fail: errors.New("boom")}, newClock(), 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Login(ctx); !errors.Is(err, guests.ErrIdP) {
		t.Fatal(err)
	}
	if dir.ctxErr != nil || len(dir.users) != 0 {
		t.Fatalf("the deletion ran with a cancelled context (%v) or did not run (%d users)", dir.ctxErr, len(dir.users))
	}
}

func TestPerIPLimitKeysIPv6Per64(t *testing.T) {
	clk := newClock()
	dir := newDir()
	s := newService(t, dir, &memIssuer{dir: dir}, clk, 1000)
	ctx := context.Background()
	admit := func(ip string) error {
		_, err := s.AdmitLogin(ctx, netip.MustParseAddr(ip))
		return err
	}
	for i := range 5 {
		if err := admit(fmt.Sprintf("2001:db8:1:2::%x", i+1)); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	var lim *guests.LimitedError
	if err := admit("2001:db8:1:2:ffff:ffff:ffff:ffff"); !errors.As(err, &lim) || lim.Scope != "client_ip" {
		t.Fatalf("sixth from the same /64: %v", err)
	}
	if ra := lim.Result.RetryAfter(); ra <= 0 || ra > 12*time.Minute {
		t.Fatalf("retry after %s, want one emission interval (12 min)", ra)
	}
	if err := admit("2001:db8:1:3::1"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	for range 5 {
		if err := admit("192.0.2.7"); err != nil {
			t.Fatal(err)
		}
	}
	if err := admit("192.0.2.7"); !errors.As(err, &lim) {
		t.Fatalf("sixth IPv4: %v", err)
	}
	if err := admit("::ffff:192.0.2.7"); !errors.As(err, &lim) {
		t.Fatalf("the same IPv4 mapped into IPv6: %v", err)
	}
	if err := admit("192.0.2.8"); err != nil {
		t.Fatalf("the neighbour: %v", err)
	}
	clk.add(12 * time.Minute)
	if err := admit("192.0.2.7"); err != nil {
		t.Fatalf("after one interval: %v", err)
	}
}

func TestGlobalCeilingSpansAddresses(t *testing.T) {
	clk := newClock()
	dir := newDir()
	s := newService(t, dir, &memIssuer{dir: dir}, clk, 6)
	ctx := context.Background()
	x := netip.MustParseAddr("198.51.100.1")
	for range 5 {
		if _, err := s.AdmitLogin(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	// x is limited per address; its denied attempts leave the sixth global
	// cell to someone else
	var lim *guests.LimitedError
	for range 3 {
		if _, err := s.AdmitLogin(ctx, x); !errors.As(err, &lim) || lim.Scope != "client_ip" {
			t.Fatalf("x again: %v", err)
		}
	}
	if _, err := s.AdmitLogin(ctx, netip.MustParseAddr("203.0.113.9")); err != nil {
		t.Fatalf("the sixth login from another address: %v", err)
	}
	res, err := s.AdmitLogin(ctx, netip.MustParseAddr("203.0.113.10"))
	if !errors.As(err, &lim) || lim.Scope != "global" || res.RetryAfter() <= 0 {
		t.Fatalf("seventh, from a fresh address: %v", err)
	}
	clk.add(10 * time.Minute) // one global cell back (6/h)
	if _, err := s.AdmitLogin(ctx, netip.MustParseAddr("203.0.113.10")); err != nil {
		t.Fatalf("after one interval: %v", err)
	}
}

func TestSessionCallsAreLimitedPerIP(t *testing.T) {
	dir := newDir()
	s := newService(t, dir, &memIssuer{dir: dir}, newClock(), 100)
	ip := netip.MustParseAddr("192.0.2.1")
	for range 3 {
		if _, err := s.AdmitSession(context.Background(), ip); err != nil {
			t.Fatal(err)
		}
	}
	var lim *guests.LimitedError
	if _, err := s.AdmitSession(context.Background(), ip); !errors.As(err, &lim) {
		t.Fatalf("fourth: %v", err)
	}
	// the session budget is not the login budget
	if _, err := s.AdmitLogin(context.Background(), ip); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshAndLogoutMapErrors(t *testing.T) {
	dir := newDir()
	iss := &memIssuer{dir: dir}
	s := newService(t, dir, iss, newClock(), 100)
	ctx := context.Background()
	if _, err := s.Refresh(ctx, "rt-x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, "nope"); !errors.Is(err, guests.ErrInvalidGrant) {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, "rt-x"); err != nil || len(iss.revoked) != 1 {
		t.Fatal(err)
	}
	iss.fail = errors.New("keycloak: refresh grant: HTTP 502")
	if _, err := s.Refresh(ctx, "rt-x"); !errors.Is(err, guests.ErrIdP) {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, "rt-x"); !errors.Is(err, guests.ErrIdP) {
		t.Fatal(err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	toks := &guests.Tokens{AccessToken: "at-secret", RefreshToken: "rt-secret"}
	for _, s := range []string{fmt.Sprint(toks.AccessToken), fmt.Sprintf("%v %+v %#v", *toks, *toks, *toks)} {
		if strings.Contains(s, "secret") && !strings.Contains(s, "[secret]") || strings.Contains(s, "at-secret") || strings.Contains(s, "rt-secret") {
			t.Fatalf("printed: %s", s)
		}
	}
	var b strings.Builder
	l := zerolog.New(&b)
	l.Info().Object("tokens", toks).Msg("")
	if strings.Contains(b.String(), "at-secret") {
		t.Fatal("logged")
	}
}

func TestConfigIsValidated(t *testing.T) {
	if _, err := guests.New(guests.Config{}); !errors.Is(err, guests.ErrInvalidConfig) {
		t.Fatal(err)
	}
	dir := newDir()
	lim, _ := ratelimit.NewLocal(ratelimit.LocalConfig{})
	if _, err := guests.New(guests.Config{Directory: dir, Issuer: &memIssuer{dir: dir}, Limiter: lim,
		PerIP: []ratelimit.Limit{{Rate: 0, Period: time.Hour}}}); !errors.Is(err, guests.ErrInvalidConfig) {
		t.Fatal(err)
	}
}

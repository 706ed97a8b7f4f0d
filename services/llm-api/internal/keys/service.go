package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/rs/zerolog"
)

// Limits of the inputs (documented in the service README).
const (
	MaxNameRunes  = 64
	MaxRoles      = 32
	MaxRoleBytes  = 128
	MaxGrace      = 7 * 24 * time.Hour
	ListLimit     = 200
	kidAttempts   = 5
	RoleAdmin     = "admin"
	publishWait   = 2 * time.Second
	defaultMaxKey = 10
)

// InputError is a refused input (HTTP 400) with a stable code.
type InputError struct {
	Code    string
	Message string
}

func (e *InputError) Error() string { return e.Code + ": " + e.Message }

// Authorization refusals of the management operations (HTTP 403).
var (
	ErrRolesNotHeld = errors.New("requested roles are not all held by the caller")
	ErrGuest        = errors.New("guests cannot manage api keys")
)

// Config configures a Service.
type Config struct {
	Store   Store
	Roles   RoleSource
	Peppers *apikey.Peppers
	Revoked *Sweeper // publishes revocations; nil: none (tests)
	Usage   *Usage   // records last use; nil: none
	// Budgets checks and mirrors keys' own budgets and models; nil: keys
	// carry none (a create asking for one is ErrBudgetsOff).
	Budgets Budgets

	// MaxPerUser is the most active keys an owner may have (default 10).
	MaxPerUser int
	// DefaultExpiresDays applies when a create request has no
	// expires_in_days (default 90); MaxExpiresDays bounds it (default 365).
	DefaultExpiresDays int
	MaxExpiresDays     int
	// Env is the environment tag of new keys: apikey.EnvLive (default),
	// apikey.EnvTest, or "none" for untagged keys.
	Env string
	// IncludeEmail adds the owner's e-mail to validation results (PII: off
	// by default).
	IncludeEmail bool

	Now    func() time.Time
	NewKey func(env string) (apikey.Key, error) // default apikey.Generate
	Logger zerolog.Logger
}

// MinExpiresSeconds is the shortest lifetime a create request may ask for
// (expires_in_seconds); the longest is Config.MaxExpiresDays.
const MinExpiresSeconds = 1

// Service implements the key operations.
type Service struct {
	cfg Config
	env string
	log zerolog.Logger
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Roles == nil || cfg.Peppers == nil {
		return nil, errors.New("keys: store, role source and peppers are required")
	}
	if cfg.MaxPerUser == 0 {
		cfg.MaxPerUser = defaultMaxKey
	}
	if cfg.DefaultExpiresDays == 0 {
		cfg.DefaultExpiresDays = 90
	}
	if cfg.MaxExpiresDays == 0 {
		cfg.MaxExpiresDays = 365
	}
	if cfg.DefaultExpiresDays > cfg.MaxExpiresDays || cfg.MaxPerUser < 1 {
		return nil, errors.New("keys: default expiry exceeds the maximum, or max per user < 1")
	}
	env := cfg.Env
	switch env {
	case "":
		env = apikey.EnvLive
	case "none":
		env = ""
	case apikey.EnvLive, apikey.EnvTest:
	default:
		return nil, fmt.Errorf("keys: environment %q is not live, test or none", cfg.Env)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewKey == nil {
		cfg.NewKey = apikey.Generate
	}
	return &Service{cfg: cfg, env: env, log: cfg.Logger.With().Str("component", "keys").Logger()}, nil
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }

// CreateInput is a decoded create request. At most one of ExpiresInDays
// and ExpiresInSeconds may be set; neither: the default lifetime.
type CreateInput struct {
	Name             string
	ExpiresInDays    *int
	ExpiresInSeconds *int64   // short-lived keys (edgectl run)
	Roles            []string // nil: the caller's roles minus admin
	// Budget is the key's own budget (nil: none) and Models the models it
	// may use (nil: the owner's); both within the owner's (Budgets.Check).
	Budget *budget.Limits
	Models []string
}

// Created is a new key: the record and the key itself, shown once.
type Created struct {
	Record Record
	Key    apikey.Key
}

// Create makes a key for the caller.
func (s *Service) Create(ctx context.Context, caller *identity.Identity, in CreateInput) (Created, error) {
	if err := s.manager(caller); err != nil {
		return Created{}, err
	}
	name, err := checkName(in.Name)
	if err != nil {
		return Created{}, err
	}
	expiry, err := s.expiry(in)
	if err != nil {
		return Created{}, err
	}
	roles, err := s.grantRoles(caller, in.Roles)
	if err != nil {
		return Created{}, err
	}
	if err := s.checkBudget(ctx, caller, in); err != nil {
		return Created{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	e := expiry(now)
	exp := &e
	for range kidAttempts {
		rec, key, err := s.newRecord(caller.Subject, name, roles, now, exp)
		if err != nil {
			return Created{}, err
		}
		rec.Budget, rec.Models = in.Budget, slices.Clone(in.Models)
		// Redis first: a key is never usable without its limits (an
		// entry of a key that then fails to be stored is removed, and
		// expires with the key anyway)
		if rec.Budgeted() {
			if err := s.cfg.Budgets.Apply(ctx, *rec); err != nil {
				return Created{}, fmt.Errorf("key budget: %w", err)
			}
		}
		err = s.cfg.Store.Create(ctx, rec, s.cfg.MaxPerUser, now)
		if err != nil {
			s.removeBudget(ctx, *rec)
		}
		if errors.Is(err, ErrKIDTaken) {
			s.log.Info().Str("kid", rec.KID).Msg("key id collision; generating another key")
			continue
		}
		if err != nil {
			return Created{}, err
		}
		s.log.Info().Str("kid", rec.KID).Str("key_uuid", rec.ID).Str("owner", rec.Owner).Bool("budget", rec.Budget != nil).
			Bool("models", rec.Models != nil).Msg("api key created")
		return Created{Record: *rec, Key: key}, nil
	}
	return Created{}, fmt.Errorf("keys: %d key id collisions in a row", kidAttempts)
}

// checkBudget checks a requested key budget and models: well-formed, and
// within the caller's own (Budgets.Check).
func (s *Service) checkBudget(ctx context.Context, caller *identity.Identity, in CreateInput) error {
	if in.Budget == nil && in.Models == nil {
		return nil
	}
	if in.Budget != nil && in.Budget.Zero() {
		return &InputError{"invalid_budget", "budget sets no limit (leave it out for none)"}
	}
	if in.Models != nil {
		if err := budget.CheckModels(in.Models); err != nil {
			var fe *budget.FieldError
			errors.As(err, &fe)
			return &InputError{"invalid_models", fe.Message}
		}
	}
	if s.cfg.Budgets == nil {
		return ErrBudgetsOff
	}
	return s.cfg.Budgets.Check(ctx, caller, in.Budget, in.Models)
}

// removeBudget deletes a key's Redis limits (a revoked key, a key that
// failed to be stored); a failure is logged: the entry expires with the
// key, and the edge refuses the key anyway.
func (s *Service) removeBudget(ctx context.Context, rec Record) {
	if !rec.Budgeted() || s.cfg.Budgets == nil {
		return
	}
	if err := s.cfg.Budgets.Remove(ctx, rec); err != nil {
		s.log.Warn().Err(err).Str("kid", rec.KID).Msg("key budget not removed from Redis (it expires with the key)")
	}
}

// expiry checks the requested lifetime and returns the expiry of a key
// created at now: expires_in_days (calendar days), or expires_in_seconds
// (MinExpiresSeconds up to MaxExpiresDays days), never both.
func (s *Service) expiry(in CreateInput) (func(now time.Time) time.Time, error) {
	switch {
	case in.ExpiresInDays != nil && in.ExpiresInSeconds != nil:
		return nil, &InputError{"invalid_expiry", "give expires_in_days or expires_in_seconds, not both"}
	case in.ExpiresInSeconds != nil:
		secs, most := *in.ExpiresInSeconds, int64(s.cfg.MaxExpiresDays)*86400
		if secs < MinExpiresSeconds || secs > most {
			return nil, &InputError{"invalid_expires_in_seconds", fmt.Sprintf("expires_in_seconds must be %d..%d", MinExpiresSeconds, most)}
		}
		return func(now time.Time) time.Time { return now.Add(time.Duration(secs) * time.Second) }, nil
	}
	days := s.cfg.DefaultExpiresDays
	if in.ExpiresInDays != nil {
		days = *in.ExpiresInDays
		if days < 1 || days > s.cfg.MaxExpiresDays {
			return nil, &InputError{"invalid_expires_in_days", fmt.Sprintf("expires_in_days must be 1..%d", s.cfg.MaxExpiresDays)}
		}
	}
	return func(now time.Time) time.Time { return now.AddDate(0, 0, days) }, nil
}

func (s *Service) manager(caller *identity.Identity) error {
	if caller == nil || caller.Subject == "" {
		return errors.New("keys: no caller identity")
	}
	if caller.Guest || caller.HasRole(identity.RoleGuest) {
		return ErrGuest
	}
	return nil
}

func (s *Service) newRecord(owner, name string, roles []string, now time.Time, exp *time.Time) (*Record, apikey.Key, error) {
	key, err := s.cfg.NewKey(s.env)
	if err != nil {
		return nil, apikey.Key{}, fmt.Errorf("generate key: %w", err)
	}
	mac, pepperID := s.cfg.Peppers.Hash(key)
	id, err := NewUUID()
	if err != nil {
		return nil, apikey.Key{}, err
	}
	return &Record{
		ID: id, KID: key.KID(), MAC: mac, PepperID: pepperID, Owner: owner, Name: name,
		Roles: roles, Last4: key.Last4(), CreatedAt: now, ExpiresAt: exp,
	}, key, nil
}

// checkName trims and checks a key name: 1..64 characters of valid UTF-8,
// no control or format characters.
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	bad := func(msg string) (string, error) { return "", &InputError{"invalid_name", msg} }
	if name == "" {
		return bad("name is required")
	}
	if !utf8.ValidString(name) {
		return bad("name must be valid UTF-8")
	}
	if utf8.RuneCountInString(name) > MaxNameRunes {
		return bad(fmt.Sprintf("name is longer than %d characters", MaxNameRunes))
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return bad("name contains control characters")
		}
	}
	return name, nil
}

// grantRoles checks requested roles against the caller's current realm
// roles (the verified token's); nil requests the caller's roles minus admin.
func (s *Service) grantRoles(caller *identity.Identity, requested []string) ([]string, error) {
	if requested == nil {
		out := make([]string, 0, len(caller.RealmRoles))
		for _, r := range caller.RealmRoles {
			if r != RoleAdmin && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	if len(requested) > MaxRoles {
		return nil, &InputError{"invalid_roles", fmt.Sprintf("at most %d roles", MaxRoles)}
	}
	out := make([]string, 0, len(requested))
	for _, r := range requested {
		if r == "" || len(r) > MaxRoleBytes || !utf8.ValidString(r) || strings.ContainsFunc(r, unicode.IsControl) {
			return nil, &InputError{"invalid_roles", "role names must be 1..128 bytes of printable UTF-8"}
		}
		if !caller.HasRole(r) {
			return nil, ErrRolesNotHeld
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out, nil
}

// List returns the caller's keys (never the secret).
func (s *Service) List(ctx context.Context, caller *identity.Identity) ([]Record, error) {
	if err := s.manager(caller); err != nil {
		return nil, err
	}
	return s.cfg.Store.List(ctx, caller.Subject, ListLimit)
}

// Revoke revokes the caller's key id now and announces it to the edge.
// Revoking a revoked key succeeds (idempotent); another owner's key is
// ErrNotFound.
func (s *Service) Revoke(ctx context.Context, caller *identity.Identity, id string) (Record, error) {
	if err := s.manager(caller); err != nil {
		return Record{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	rec, changed, err := s.cfg.Store.Revoke(ctx, caller.Subject, id, now)
	if err != nil {
		return Record{}, err
	}
	if changed {
		s.log.Info().Str("kid", rec.KID).Str("key_uuid", rec.ID).Msg("api key revoked")
		s.removeBudget(ctx, rec)
		if s.cfg.Revoked != nil {
			s.cfg.Revoked.PublishNow(ctx, rec, now)
		}
	}
	return rec, nil
}

// RotateInput is a decoded rotate request.
type RotateInput struct {
	GraceSeconds int
}

// Rotated is the result of a rotation.
type Rotated struct {
	Created
	Old Record
}

// Rotate replaces the caller's key id with a new key of the same name and
// roles (new secret, new key id) and revokes the old one after the grace
// period. The new key lives as long as the old one was meant to.
func (s *Service) Rotate(ctx context.Context, caller *identity.Identity, id string, in RotateInput) (Rotated, error) {
	if err := s.manager(caller); err != nil {
		return Rotated{}, err
	}
	if in.GraceSeconds < 0 || time.Duration(in.GraceSeconds)*time.Second > MaxGrace {
		return Rotated{}, &InputError{"invalid_grace_seconds", fmt.Sprintf("grace_seconds must be 0..%d", int(MaxGrace/time.Second))}
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	revokeAt := now.Add(time.Duration(in.GraceSeconds) * time.Second)
	for range kidAttempts {
		var key apikey.Key
		build := func(old Record) (*Record, error) {
			var exp *time.Time
			if old.ExpiresAt != nil {
				e := now.Add(old.ExpiresAt.Sub(old.CreatedAt))
				exp = &e
			}
			rec, k, err := s.newRecord(old.Owner, old.Name, old.Roles, now, exp)
			if err != nil {
				return nil, err
			}
			key = k
			// the new key keeps the old one's budget and models, in Redis
			// before it exists (the transaction rolls back if this fails)
			rec.Budget, rec.Models = old.Budget, slices.Clone(old.Models)
			if rec.Budgeted() && s.cfg.Budgets != nil {
				if err := s.cfg.Budgets.Apply(ctx, *rec); err != nil {
					return nil, fmt.Errorf("key budget: %w", err)
				}
			}
			return rec, nil
		}
		old, created, err := s.cfg.Store.Rotate(ctx, caller.Subject, id, build, revokeAt, now)
		if errors.Is(err, ErrKIDTaken) {
			s.log.Info().Msg("key id collision on rotation; generating another key")
			continue
		}
		if err != nil {
			return Rotated{}, err
		}
		s.log.Info().Str("kid", created.KID).Str("old_kid", old.KID).Int("grace_seconds", in.GraceSeconds).Msg("api key rotated")
		if in.GraceSeconds == 0 && s.cfg.Revoked != nil {
			s.cfg.Revoked.PublishNow(ctx, old, now)
		}
		switch {
		case in.GraceSeconds == 0:
			s.removeBudget(ctx, old)
		case old.Budgeted() && s.cfg.Budgets != nil:
			// still valid for the grace period: its entry ends with it
			if err := s.cfg.Budgets.Apply(ctx, old); err != nil {
				s.log.Warn().Err(err).Str("kid", old.KID).Msg("old key budget's end not written to Redis (it expires with the key)")
			}
		}
		return Rotated{Created: Created{Record: created, Key: key}, Old: old}, nil
	}
	return Rotated{}, fmt.Errorf("keys: %d key id collisions in a row", kidAttempts)
}

// Validation is what the edge learns about a valid key (docs/contracts.md).
type Validation struct {
	Subject  string
	Username string
	Email    string // only with Config.IncludeEmail
	Roles    []string
	KeyID    string
	// ExpiresAt is when the key stops being valid: its expiry, or the end of
	// a rotation's grace period, whichever is first (nil: never).
	ExpiresAt *time.Time
	Guest     bool
}

// Validate checks a whole key: format and checksum, stored MAC, revocation,
// expiry, and the owner (enabled, current roles). A refusal is a Reason;
// *InputError for a malformed key; any other error is a failure (503).
func (s *Service) Validate(ctx context.Context, raw string) (Validation, error) {
	key, err := apikey.Parse(raw)
	if err != nil {
		return Validation{}, &InputError{"invalid_request", "malformed api key"}
	}
	rec, err := s.cfg.Store.ByKID(ctx, key.KID())
	if errors.Is(err, ErrNotFound) {
		return Validation{}, ReasonUnknown
	}
	if err != nil {
		return Validation{}, fmt.Errorf("look up key: %w", err)
	}
	ok, rehash := s.cfg.Peppers.Verify(key, rec.PepperID, rec.MAC)
	if !ok {
		// a key carrying someone's public key id, or a stale pepper
		return Validation{}, ReasonUnknown
	}
	now := s.cfg.Now()
	switch rec.Status(now) {
	case StatusRevoked:
		return Validation{}, ReasonRevoked
	case StatusExpired:
		return Validation{}, ReasonExpired
	}
	owner, err := s.cfg.Roles.Owner(ctx, rec.Owner)
	if errors.Is(err, ErrOwnerNotFound) {
		return Validation{}, ReasonOwnerDisabled
	}
	if err != nil {
		return Validation{}, fmt.Errorf("look up owner: %w", err)
	}
	if !owner.Enabled {
		return Validation{}, ReasonOwnerDisabled
	}
	if rehash {
		mac, pid := s.cfg.Peppers.Hash(key)
		if err := s.cfg.Store.Rehash(ctx, rec.ID, rec.PepperID, mac, pid); err != nil {
			s.log.Warn().Err(err).Str("kid", rec.KID).Msg("re-hash with the current pepper failed")
		}
	}
	if s.cfg.Usage != nil {
		s.cfg.Usage.Record(rec.ID, now)
	}
	roles := make([]string, 0, len(rec.Roles))
	for _, r := range rec.Roles {
		if slices.Contains(owner.RealmRoles, r) {
			roles = append(roles, r)
		}
	}
	v := Validation{
		Subject: rec.Owner, Username: owner.Username, Roles: roles, KeyID: rec.KID,
		ExpiresAt: rec.ExpiresAt, Guest: slices.Contains(owner.RealmRoles, identity.RoleGuest),
	}
	if rec.RevokedAt != nil && (v.ExpiresAt == nil || rec.RevokedAt.Before(*v.ExpiresAt)) {
		v.ExpiresAt = rec.RevokedAt
	}
	if s.cfg.IncludeEmail {
		v.Email = owner.Email
	}
	return v, nil
}

// NewUUID returns a random (version 4) UUID.
func NewUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("uuid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0xf])
	}
	return string(out), nil
}

// ValidUUID reports whether s is a UUID in canonical lower- or upper-case
// hex form (path parameters are checked before any lookup).
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

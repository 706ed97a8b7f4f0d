// Package entitlement is what llm-api's callers may spend and use beyond
// what their roles give them (package budget's budgets file): an
// administrator's budget override of one user, and an API key's own budget
// and models. PostgreSQL holds them (Store); Redis holds the copy every
// reservation reads (package budget's stored limits), written on each
// change and again by Sync at start and every few minutes, so a flushed
// Redis or a lost write cannot leave a limited user or key unlimited for
// long. It also answers what a caller has left (Status, GET /v1/usage).
//
// It does not reserve or settle (packages budget and metering), holds no
// SQL (package store) and does no HTTP (package server).
package entitlement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/rs/zerolog"
)

// ErrNotFound: the user has no override (or it was removed).
var ErrNotFound = errors.New("no budget override for this user")

// Parts of a subject's budget keys in Redis (package budget): the user's
// own scope and an API key's.
const (
	PartUser   = "u"
	partKeyPre = "k:"
)

// PartKey is the Redis part of an API key's scope.
func PartKey(kid string) string { return partKeyPre + kid }

// Override is an administrator's budgets of one user: Limits replace the
// budgets of the user's roles (0 in a window: no limit there) and Models,
// when not nil, the models the roles allow.
type Override struct {
	Subject   string
	Limits    budget.Limits
	Models    []string
	UpdatedAt time.Time
	// UpdatedBy is the subject of the administrator who set it.
	UpdatedBy string
	// Removed is when it was removed (ListOverrides' tombstones only).
	Removed *time.Time
}

// KeyBudget is an API key's own budget and models as the sync writes them.
type KeyBudget struct {
	Owner, KID string
	Budget     *budget.Limits
	Models     []string
	// End is when the key stops being valid (its expiry or revocation,
	// the earlier; nil: never).
	End *time.Time
}

// Store keeps overrides and lists the keys' budgets (store.PG). The apply
// callbacks write Redis while PostgreSQL holds the row locked, so two
// writers (an administrator and the sync, two administrators) reach Redis
// in the order they reached PostgreSQL.
type Store interface {
	// PutOverride inserts or replaces o (clearing a removal) and calls
	// apply before committing; an error of apply rolls it back.
	PutOverride(ctx context.Context, o Override, apply func(context.Context) error) error
	// Override returns subject's override; ErrNotFound when there is none
	// or it was removed.
	Override(ctx context.Context, subject string) (Override, error)
	// RemoveOverride marks subject's override removed (at, by; a removed
	// one keeps its first removal) and calls apply before committing;
	// ErrNotFound when there never was one (or its tombstone is gone).
	RemoveOverride(ctx context.Context, subject, by string, at time.Time, apply func(context.Context) error) error
	// ListOverrides calls apply with every override and every tombstone
	// removed since removedSince, holding them locked against changes.
	ListOverrides(ctx context.Context, removedSince time.Time, apply func(context.Context, []Override) error) error
	// KeyBudgets lists the keys with their own budget or models whose End
	// is after endedSince (or nil).
	KeyBudgets(ctx context.Context, endedSince time.Time) ([]KeyBudget, error)
}

// Redis is the copy every reservation reads (budget.Store).
type Redis interface {
	SetLimitsUntil(ctx context.Context, subject, part string, l *budget.StoredLimits, until time.Time) error
	Status(ctx context.Context, subject string, scopes []budget.Scope) ([]budget.ScopeStatus, error)
}

var (
	_ Redis        = (*budget.Store)(nil)
	_ keys.Budgets = (*Service)(nil)
)

// Defaults.
const (
	DefaultSyncInterval = 5 * time.Minute
	// tombstoneTTL is how long removed overrides and ended keys are still
	// removed from Redis by the sync (several syncs: one that failed, or
	// raced the removal, is repaired by the next).
	tombstoneTTL = 24 * time.Hour
)

// Config configures a Service.
type Config struct {
	// Budgets is the budgets file: the roles' grants.
	Budgets budget.Config
	Store   Store
	Redis   Redis
	Now     func() time.Time
	Logger  zerolog.Logger
}

// Service applies overrides and key budgets.
type Service struct {
	cfg Config
	log zerolog.Logger
}

// New checks cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Redis == nil {
		return nil, errors.New("entitlement: store and redis are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger.With().Str("component", "budgets").Logger()}, nil
}

func stored(l budget.Limits, models []string) *budget.StoredLimits {
	return &budget.StoredLimits{Limits: l, Models: slices.Clone(models)}
}

// PutOverride sets subject's override (by: the administrator's subject): in
// PostgreSQL and, before that commits, in Redis; an error changes neither
// (almost: a commit failing after Redis took it leaves Redis ahead until
// the next sync rewrites what PostgreSQL holds).
func (s *Service) PutOverride(ctx context.Context, o Override) (Override, error) {
	o.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
	o.Removed = nil
	err := s.cfg.Store.PutOverride(ctx, o, func(ctx context.Context) error {
		return s.cfg.Redis.SetLimitsUntil(ctx, o.Subject, PartUser, stored(o.Limits, o.Models), time.Time{})
	})
	if err != nil {
		return Override{}, fmt.Errorf("budget override: %w", err)
	}
	s.log.Info().Str("subject", o.Subject).Str("by", o.UpdatedBy).Msg("budget override set")
	return o, nil
}

// Override returns subject's override (ErrNotFound).
func (s *Service) Override(ctx context.Context, subject string) (Override, error) {
	return s.cfg.Store.Override(ctx, subject)
}

// RemoveOverride removes subject's override (ErrNotFound when there is
// none; removing a removed one again succeeds and deletes the Redis copy
// again).
func (s *Service) RemoveOverride(ctx context.Context, subject, by string) error {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	err := s.cfg.Store.RemoveOverride(ctx, subject, by, now, func(ctx context.Context) error {
		return s.cfg.Redis.SetLimitsUntil(ctx, subject, PartUser, nil, time.Time{})
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("budget override: %w", err)
	}
	s.log.Info().Str("subject", subject).Str("by", by).Msg("budget override removed")
	return nil
}

// Effective is what a user may spend and use: an override's when one is
// set, else their roles' grant.
type Effective struct {
	Limits budget.Limits
	// Models the user may use (nil: every model).
	Models   []string
	Override bool
}

// Effective returns subject's budgets with roles (budget.ErrNoBudget when
// neither an override nor the roles give any).
func (s *Service) Effective(ctx context.Context, subject string, roles []string) (Effective, error) {
	grant, gerr := s.cfg.Budgets.Grant(roles)
	o, err := s.cfg.Store.Override(ctx, subject)
	switch {
	case err == nil:
		e := Effective{Limits: o.Limits, Models: o.Models, Override: true}
		if e.Models == nil && gerr == nil {
			e.Models = grant.Models
		}
		return e, nil
	case !errors.Is(err, ErrNotFound):
		return Effective{}, err
	case gerr != nil:
		return Effective{}, gerr
	}
	return Effective{Limits: grant.Limits, Models: grant.Models}, nil
}

// Check implements keys.Budgets: a key's budget must stay within its
// owner's effective budget in every window the owner is limited in, and
// its models among the owner's.
func (s *Service) Check(ctx context.Context, owner *identity.Identity, l *budget.Limits, models []string) error {
	e, err := s.Effective(ctx, owner.Subject, owner.RealmRoles)
	if err != nil {
		return err
	}
	if l != nil && !l.Within(e.Limits) {
		return &keys.InputError{Code: CodeBudgetExceedsOwner,
			Message: "the key's budget must set every window your own budget limits, at most as high as yours"}
	}
	if models != nil && e.Models != nil {
		for _, m := range models {
			if !slices.Contains(e.Models, m) {
				return &keys.InputError{Code: CodeModelsNotAllowed, Message: "the key's models must be among the models you may use"}
			}
		}
	}
	return nil
}

// Codes of Check's refusals.
const (
	CodeBudgetExceedsOwner = "budget_exceeds_owner"
	CodeModelsNotAllowed   = "models_not_allowed"
)

// Apply implements keys.Budgets: the key's budget and models in Redis,
// dropped by Redis after the key's end.
func (s *Service) Apply(ctx context.Context, rec keys.Record) error {
	if !rec.Budgeted() {
		return nil
	}
	var l budget.Limits
	if rec.Budget != nil {
		l = *rec.Budget
	}
	var until time.Time
	if end := rec.End(); end != nil {
		until = *end
	}
	return s.cfg.Redis.SetLimitsUntil(ctx, rec.Owner, PartKey(rec.KID), stored(l, rec.Models), until)
}

// Remove implements keys.Budgets: the key's entry leaves Redis.
func (s *Service) Remove(ctx context.Context, rec keys.Record) error {
	if !rec.Budgeted() {
		return nil
	}
	return s.cfg.Redis.SetLimitsUntil(ctx, rec.Owner, PartKey(rec.KID), nil, time.Time{})
}

// SyncResult counts what a Sync wrote.
type SyncResult struct {
	Overrides, OverridesRemoved, Keys, KeysRemoved, Failed int
}

// Sync writes every override and every live key budget from PostgreSQL
// to Redis, and removes the copies of overrides removed and keys ended in
// the last day. It goes on past a failed write and returns the first error.
func (s *Service) Sync(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	var first error
	note := func(err error) {
		res.Failed++
		if first == nil {
			first = err
		}
	}
	now := s.cfg.Now()
	err := s.cfg.Store.ListOverrides(ctx, now.Add(-tombstoneTTL), func(ctx context.Context, os []Override) error {
		for _, o := range os {
			var l *budget.StoredLimits
			if o.Removed == nil {
				l = stored(o.Limits, o.Models)
			}
			if err := s.cfg.Redis.SetLimitsUntil(ctx, o.Subject, PartUser, l, time.Time{}); err != nil {
				note(err)
				continue
			}
			if l == nil {
				res.OverridesRemoved++
			} else {
				res.Overrides++
			}
		}
		return nil
	})
	if err != nil {
		note(err)
	}
	kbs, err := s.cfg.Store.KeyBudgets(ctx, now.Add(-tombstoneTTL))
	if err != nil {
		note(err)
	}
	for _, k := range kbs {
		rec := keys.Record{Owner: k.Owner, KID: k.KID, Budget: k.Budget, Models: k.Models, ExpiresAt: k.End}
		var err error
		ended := k.End != nil && !k.End.After(now)
		if ended {
			err = s.Remove(ctx, rec)
		} else {
			err = s.Apply(ctx, rec)
		}
		switch {
		case err != nil:
			note(err)
		case ended:
			res.KeysRemoved++
		default:
			res.Keys++
		}
	}
	if first != nil {
		return res, fmt.Errorf("budget sync: %w", first)
	}
	return res, nil
}

// Run syncs at once and then every interval (default
// DefaultSyncInterval) until ctx ends, logging the counts.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSyncInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := s.Sync(ctx)
		ev := s.log.Info()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ev = s.log.Warn().Err(err)
		} else if res == (SyncResult{}) {
			ev = s.log.Debug()
		}
		ev.Int("overrides", res.Overrides).Int("overrides_removed", res.OverridesRemoved).Int("keys", res.Keys).
			Int("keys_removed", res.KeysRemoved).Int("failed", res.Failed).Dur("next_in", interval).
			Msg("budget overrides and key budgets written to Redis")
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status is a caller's budgets as the next reservation sees them.
type Status struct {
	// Models the caller may use (nil: every model): the override's or
	// the roles', narrowed by an API key's own.
	Models []string
	// Scopes: the user's, then the API key's when it has its own, then
	// the per-model budgets of the roles, by model name.
	Scopes []budget.ScopeStatus
}

// Status reads id's budgets from Redis (what the reservations apply: the
// stored copies of an override and of the key's budget).
func (s *Service) Status(ctx context.Context, id *identity.Identity) (Status, error) {
	grant, gerr := s.cfg.Budgets.Grant(id.RealmRoles)
	if gerr != nil && !errors.Is(gerr, budget.ErrNoBudget) {
		return Status{}, gerr
	}
	scopes := []budget.Scope{{Kind: "user", Part: PartUser, Limits: grant.Limits, Stored: true}}
	if id.APIKeyID != "" {
		scopes = append(scopes, budget.Scope{Kind: "key", Part: PartKey(id.APIKeyID), Stored: true})
	}
	models := make([]string, 0, len(grant.ModelLimits))
	for m := range grant.ModelLimits {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		scopes = append(scopes, budget.Scope{Kind: "model", Part: "m:" + m, Limits: grant.ModelLimits[m]})
	}
	st, err := s.cfg.Redis.Status(ctx, id.Subject, scopes)
	if err != nil {
		return Status{}, err
	}
	out := Status{Models: grant.Models, Scopes: st[:1]}
	switch user := st[0]; {
	case user.Stored != nil && user.Stored.Models != nil:
		out.Models = user.Stored.Models
	case user.Stored == nil && gerr != nil:
		out.Models = []string{} // no budget at all: nothing may be used
	}
	rest := st[1:]
	if id.APIKeyID != "" {
		if key := st[1]; key.Stored != nil {
			out.Scopes = append(out.Scopes, key)
			if km := key.Stored.Models; km != nil {
				if out.Models == nil {
					out.Models = km
				} else {
					out.Models = slices.DeleteFunc(slices.Clone(out.Models), func(m string) bool { return !slices.Contains(km, m) })
				}
			}
		}
		rest = st[2:]
	}
	out.Scopes = append(out.Scopes, rest...)
	return out, nil
}

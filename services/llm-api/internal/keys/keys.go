// Package keys is llm-api's API-key service: creating, listing, revoking and
// rotating a user's keys, and validating a key for the edge (the server side
// of docs/contracts.md). Keys are stored as HMAC-SHA-256 under a rotating
// pepper (pkg/apikey); a key's roles are intersected with its owner's current
// realm roles on every validation.
//
// It owns the rules and the interfaces it consumes (Store, RoleSource,
// Publisher); it does no HTTP and no SQL. The PostgreSQL store is package
// store, the Keycloak role source package keycloak, the HTTP layer package
// server.
package keys

import (
	"context"
	"errors"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
)

// Record is one stored key. The secret is never stored: MAC is
// HMAC-SHA-256(pepper PepperID, whole key).
type Record struct {
	ID         string // UUID
	KID        string // public key id, unique
	MAC        []byte
	PepperID   string
	Owner      string // Keycloak subject
	Name       string
	Roles      []string
	Last4      string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time // may lie in the future: the end of a rotation's grace period
	LastUsedAt *time.Time
	ReplacedBy string // id of the key that rotated this one
	// Budget is the key's own budget (nil: none, its owner's alone
	// applies) and Models the models it may use (nil: its owner's); both
	// are copied to the key that rotates it and mirrored to Redis (Budgets).
	Budget *budget.Limits
	Models []string
}

// Budgeted reports whether the key has its own budget or models.
func (r *Record) Budgeted() bool { return r.Budget != nil || r.Models != nil }

// End is when the key stops being valid: the earlier of its expiry and its
// revocation (nil: never).
func (r *Record) End() *time.Time {
	end := r.ExpiresAt
	if r.RevokedAt != nil && (end == nil || r.RevokedAt.Before(*end)) {
		end = r.RevokedAt
	}
	return end
}

// Status values of a key (derived, never stored).
const (
	StatusActive   = "active"
	StatusRotating = "rotating" // replaced, still valid until RevokedAt
	StatusRevoked  = "revoked"
	StatusExpired  = "expired"
)

// Status returns the key's status at now.
func (r *Record) Status(now time.Time) string {
	switch {
	case r.RevokedAt != nil && !r.RevokedAt.After(now):
		return StatusRevoked
	case r.ExpiresAt != nil && !r.ExpiresAt.After(now):
		return StatusExpired
	case r.RevokedAt != nil:
		return StatusRotating
	}
	return StatusActive
}

// Store errors.
var (
	ErrNotFound  = errors.New("api key not found")
	ErrKIDTaken  = errors.New("api key id already exists")
	ErrNameTaken = errors.New("api key name already used by an active key")
	ErrLimit     = errors.New("too many active api keys")
	ErrNotActive = errors.New("api key is revoked, expired or already rotated")
)

// Store persists keys. Implementations: store.PG (PostgreSQL) and
// keystest.MemStore; both pass keystest.StoreContract.
type Store interface {
	// Create inserts rec unless its owner already has maxActive active keys
	// (ErrLimit), an active key of the same name (ErrNameTaken), or rec.KID
	// exists (ErrKIDTaken). Active: not revoked (RevokedAt nil) at now.
	Create(ctx context.Context, rec *Record, maxActive int, now time.Time) error
	// List returns the owner's keys, newest first, at most limit.
	List(ctx context.Context, owner string, limit int) ([]Record, error)
	// Revoke sets RevokedAt = now on the owner's key unless it is already
	// revoked at or before now. It returns the record as stored after the
	// call and whether it changed; ErrNotFound for another owner's key.
	Revoke(ctx context.Context, owner, id string, now time.Time) (Record, bool, error)
	// Rotate, in one transaction, locks the owner's key id, which must be
	// active at now and not already rotated (ErrNotActive; ErrNotFound for
	// another owner's key), inserts build(old), and sets the old key's
	// RevokedAt = revokeAt and ReplacedBy. ErrKIDTaken rolls back.
	Rotate(ctx context.Context, owner, id string, build func(old Record) (*Record, error), revokeAt, now time.Time) (old, created Record, err error)
	// ByKID returns the key with that key id (ErrNotFound).
	ByKID(ctx context.Context, kid string) (Record, error)
	// Rehash replaces the stored MAC of key id if it is still under
	// oldPepper (re-hash with the current pepper on use).
	Rehash(ctx context.Context, id, oldPepper string, mac []byte, pepperID string) error
}

// Owner is what the identity provider says about a key's owner now.
type Owner struct {
	Subject    string
	Username   string
	Email      string
	Enabled    bool
	RealmRoles []string // effective (composite) realm roles
}

// ErrOwnerNotFound is returned by a RoleSource for a deleted user.
var ErrOwnerNotFound = errors.New("owner not found")

// RoleSource looks up a subject's current realm roles and whether it is
// enabled. Implementations: keycloak.Source (gocloak), keystest.Roles.
type RoleSource interface {
	Owner(ctx context.Context, subject string) (Owner, error)
}

// Publisher announces a revoked key id to every edge instance
// (docs/contracts.md: Redis channel edgeguard:apikey:revoked).
type Publisher interface {
	PublishRevocation(ctx context.Context, kid string, at time.Time) error
}

// Budgets checks API keys' own budgets and models against their owner's
// and mirrors them where every replica reserves (package entitlement:
// Redis).
type Budgets interface {
	// Check refuses (an *InputError, or budget.ErrNoBudget) a budget or
	// models the owner may not give a key.
	Check(ctx context.Context, owner *identity.Identity, l *budget.Limits, models []string) error
	// Apply writes a live key's budget and models; Remove deletes them
	// (a revoked or expired key). Both do nothing for a key without.
	Apply(ctx context.Context, rec Record) error
	Remove(ctx context.Context, rec Record) error
}

// ErrBudgetsOff: a key budget or models were asked for while the service
// has no budgets (LLM_BUDGETS_FILE unset, STRICT=false only).
var ErrBudgetsOff = errors.New("api key budgets are not configured on this server")

// Reason is the stable code of a validation refusal (HTTP 401). It is an
// error value: match with errors.Is.
type Reason string

func (r Reason) Error() string { return "api key refused: " + string(r) }

// Validation refusals (docs/contracts.md).
const (
	ReasonUnknown       Reason = "key_unknown"
	ReasonRevoked       Reason = "key_revoked"
	ReasonExpired       Reason = "key_expired"
	ReasonOwnerDisabled Reason = "owner_disabled"
)

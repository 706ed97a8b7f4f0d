// Package approval holds the human approvals that dangerous tool calls wait
// for: a call records a pending Approval bound to the requesting user, the
// tool and a SHA-256 of the exact payload (the code); an admin approves or
// denies it (over HTTP, never through a tool argument); the requester's
// repeated call consumes it once. Approvals expire: a pending one TTL after
// it was requested, an approved one TTL after it was approved.
//
// It is an in-process store (one mcp-tools replica): mcp-tools sits on the
// mcp and egress networks, away from Redis and PostgreSQL. It is not an
// authorization layer: callers pass identities they have verified and
// roles they have checked.
package approval

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// State of an approval.
type State string

// States. Expired is computed from the clock, never stored.
const (
	StatePending  State = "pending"
	StateApproved State = "approved"
	StateDenied   State = "denied"
	StateUsed     State = "used"
	StateExpired  State = "expired"
)

// Errors. Lookups by another user than the requester answer ErrNotFound
// (no existence oracle).
var (
	ErrNotFound       = errors.New("approval not found")
	ErrInvalidID      = errors.New("invalid approval id")
	ErrExpired        = errors.New("approval expired")
	ErrNotPending     = errors.New("approval is not pending")
	ErrSelfApproval   = errors.New("the requester cannot decide their own approval")
	ErrPending        = errors.New("approval still pending")
	ErrDenied         = errors.New("approval denied")
	ErrUsed           = errors.New("approval already used")
	ErrPayloadChanged = errors.New("the payload differs from the approved one")
	ErrTooManyPending = errors.New("too many pending approvals")
)

// IDPrefix starts every approval id; 26 base32 characters of crypto/rand
// (130 bits) follow.
const IDPrefix = "apr_"

const idChars = "abcdefghijklmnopqrstuvwxyz234567"

// IDLen is the length of an approval id.
const IDLen = len(IDPrefix) + 26

// ValidID reports whether s has the shape of an approval id. It does not
// allocate.
func ValidID(s string) bool {
	if len(s) != IDLen || s[:len(IDPrefix)] != IDPrefix {
		return false
	}
	for i := len(IDPrefix); i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

func newID() string {
	var b [26]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	for i := range b {
		b[i] = idChars[b[i]&31]
	}
	return IDPrefix + string(b[:])
}

// User is who requested or decided an approval (from a verified identity).
type User struct {
	Subject  string `json:"sub"`
	Username string `json:"username,omitempty"`
}

// Approval is a snapshot of one approval. Payload is the exact payload (the
// code) for the admins who decide, kept while the approval is pending or
// approved (PayloadHash stays); it is never logged.
type Approval struct {
	ID          string    `json:"id"`
	Tool        string    `json:"tool"`
	State       State     `json:"state"`
	RequestedBy User      `json:"requested_by"`
	PayloadHash string    `json:"payload_sha256"`
	Payload     string    `json:"payload"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	DecidedBy   *User     `json:"decided_by,omitempty"`
	DecidedAt   time.Time `json:"decided_at,omitzero"`
}

// Config configures a Store.
type Config struct {
	// TTL is how long a pending approval waits for a decision, and how long
	// an approved one waits to be used (default 10 min).
	TTL time.Duration
	// MaxPending bounds pending approvals in total (default 1000) and
	// MaxPendingPerUser per requester (default 10).
	MaxPending        int
	MaxPendingPerUser int
	Now               func() time.Time
}

type entry struct {
	a    Approval
	hash [32]byte
}

// Store is the in-process approval store. It is safe for concurrent use.
type Store struct {
	cfg Config
	mu  sync.Mutex
	m   map[string]*entry
}

// New returns a Store with cfg's defaults applied.
func New(cfg Config) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1000
	}
	if cfg.MaxPendingPerUser <= 0 {
		cfg.MaxPendingPerUser = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{cfg: cfg, m: make(map[string]*entry)}
}

// TTL is the configured time to live.
func (s *Store) TTL() time.Duration { return s.cfg.TTL }

// Hash is the SHA-256 an approval binds its payload with.
func Hash(payload []byte) [32]byte { return sha256.Sum256(payload) }

// state returns e's state at now (expired when a pending or approved
// approval has passed its expiry).
func (e *entry) state(now time.Time) State {
	if (e.a.State == StatePending || e.a.State == StateApproved) && !now.Before(e.a.ExpiresAt) {
		return StateExpired
	}
	return e.a.State
}

func (e *entry) snapshot(now time.Time) Approval {
	a := e.a
	a.State = e.state(now)
	if a.DecidedBy != nil {
		d := *a.DecidedBy
		a.DecidedBy = &d
	}
	return a
}

// sweep drops entries that ended (expired, used, denied) more than one TTL
// ago: for one TTL they still answer "expired"/"used" instead of "not
// found", without their payload (memory holds the code of pending and
// approved approvals only). Caller holds mu.
func (s *Store) sweep(now time.Time) {
	for id, e := range s.m {
		switch {
		case now.After(e.a.ExpiresAt.Add(s.cfg.TTL)):
			delete(s.m, id)
		case e.state(now) == StateExpired:
			e.a.Payload = ""
		}
	}
}

// Request records a pending approval of tool with payload for u.
func (s *Store) Request(u User, tool string, payload []byte) (Approval, error) {
	if u.Subject == "" || tool == "" {
		return Approval{}, errors.New("approval: requester and tool required")
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	pending, mine := 0, 0
	for _, e := range s.m {
		if e.state(now) == StatePending {
			pending++
			if e.a.RequestedBy.Subject == u.Subject {
				mine++
			}
		}
	}
	if pending >= s.cfg.MaxPending || mine >= s.cfg.MaxPendingPerUser {
		return Approval{}, ErrTooManyPending
	}
	h := Hash(payload)
	e := &entry{hash: h, a: Approval{
		ID: newID(), Tool: tool, State: StatePending, RequestedBy: u,
		PayloadHash: hex.EncodeToString(h[:]), Payload: string(payload),
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.TTL),
	}}
	for s.m[e.a.ID] != nil { // 130 random bits: never in practice
		e.a.ID = newID()
	}
	s.m[e.a.ID] = e
	return e.snapshot(now), nil
}

// Get returns the approval id (admins' view).
func (s *Store) Get(id string) (Approval, error) {
	if !ValidID(id) {
		return Approval{}, ErrInvalidID
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return Approval{}, ErrNotFound
	}
	return e.snapshot(now), nil
}

// Status returns the approval id as its requester u sees it: ErrNotFound
// for anyone else.
func (s *Store) Status(id string, u User) (Approval, error) {
	a, err := s.Get(id)
	if err == nil && a.RequestedBy.Subject != u.Subject {
		return Approval{}, ErrNotFound
	}
	return a, err
}

// Pending lists the pending approvals, oldest first.
func (s *Store) Pending() []Approval {
	now := s.cfg.Now()
	s.mu.Lock()
	out := make([]Approval, 0, 8)
	for _, e := range s.m {
		if e.state(now) == StatePending {
			out = append(out, e.snapshot(now))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Approval) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Decide approves (approve=true) or denies the pending approval id on
// behalf of admin. The requester cannot decide their own approval. An
// approved approval may be used within one TTL from now.
func (s *Store) Decide(id string, admin User, approve bool) (Approval, error) {
	if !ValidID(id) {
		return Approval{}, ErrInvalidID
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return Approval{}, ErrNotFound
	}
	switch e.state(now) {
	case StatePending:
	case StateExpired:
		return e.snapshot(now), ErrExpired
	default:
		return e.snapshot(now), ErrNotPending
	}
	if admin.Subject == "" || admin.Subject == e.a.RequestedBy.Subject {
		return e.snapshot(now), ErrSelfApproval
	}
	d := admin
	e.a.DecidedBy, e.a.DecidedAt = &d, now
	if approve {
		e.a.State = StateApproved
		e.a.ExpiresAt = now.Add(s.cfg.TTL)
	} else {
		e.a.State, e.a.Payload = StateDenied, ""
	}
	return e.snapshot(now), nil
}

// Consume uses the approved approval id for u's call of tool with payload,
// once. Another user's id is ErrNotFound; a pending one ErrPending (not
// consumed); a different payload ErrPayloadChanged (not consumed).
func (s *Store) Consume(id string, u User, tool string, payload []byte) (Approval, error) {
	if !ValidID(id) {
		return Approval{}, ErrInvalidID
	}
	h := Hash(payload)
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok || e.a.RequestedBy.Subject != u.Subject || e.a.Tool != tool {
		return Approval{}, ErrNotFound
	}
	var err error
	switch e.state(now) {
	case StateApproved:
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) != 1 {
			err = ErrPayloadChanged
		}
	case StatePending:
		err = ErrPending
	case StateDenied:
		err = ErrDenied
	case StateUsed:
		err = ErrUsed
	case StateExpired:
		err = ErrExpired
	default:
		err = fmt.Errorf("approval: unknown state %q", e.a.State)
	}
	if err != nil {
		return e.snapshot(now), err
	}
	e.a.State, e.a.Payload = StateUsed, ""
	return e.snapshot(now), nil
}

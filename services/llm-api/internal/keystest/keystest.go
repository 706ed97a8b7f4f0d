// Package keystest has in-memory fakes of the interfaces package keys
// consumes (Store, RoleSource, Publisher) and the contract suite every
// keys.Store implementation must pass. For tests only.
package keystest

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
)

// MemStore is an in-memory keys.Store, Toucher and RevocationQueue.
type MemStore struct {
	mu        sync.Mutex
	recs      map[string]*keys.Record
	published map[string]time.Time
	// Fail, when set, is returned by every call (outage tests).
	Fail error
}

var (
	_ keys.Store           = (*MemStore)(nil)
	_ keys.Toucher         = (*MemStore)(nil)
	_ keys.RevocationQueue = (*MemStore)(nil)
)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{recs: map[string]*keys.Record{}, published: map[string]time.Time{}}
}

func clone(r *keys.Record) keys.Record {
	c := *r
	c.Roles = slices.Clone(r.Roles)
	c.MAC = slices.Clone(r.MAC)
	c.Models = slices.Clone(r.Models)
	if r.Budget != nil {
		b := *r.Budget
		c.Budget = &b
	}
	for _, t := range []**time.Time{&c.ExpiresAt, &c.RevokedAt, &c.LastUsedAt} {
		if *t != nil {
			v := **t
			*t = &v
		}
	}
	return c
}

func (m *MemStore) insert(rec *keys.Record) error {
	for _, r := range m.recs {
		if r.KID == rec.KID {
			return keys.ErrKIDTaken
		}
		if r.Owner == rec.Owner && r.Name == rec.Name && r.RevokedAt == nil {
			return keys.ErrNameTaken
		}
	}
	c := clone(rec)
	if c.Roles == nil {
		c.Roles = []string{}
	}
	m.recs[rec.ID] = &c
	return nil
}

// Create implements keys.Store.
func (m *MemStore) Create(_ context.Context, rec *keys.Record, maxActive int, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	active := 0
	for _, r := range m.recs {
		if r.Owner == rec.Owner && r.RevokedAt == nil && (r.ExpiresAt == nil || r.ExpiresAt.After(now)) {
			active++
		}
	}
	if active >= maxActive {
		return keys.ErrLimit
	}
	return m.insert(rec)
}

// List implements keys.Store.
func (m *MemStore) List(_ context.Context, owner string, limit int) ([]keys.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return nil, m.Fail
	}
	out := []keys.Record{}
	for _, r := range m.recs {
		if r.Owner == owner {
			out = append(out, clone(r))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *MemStore) owned(owner, id string) (*keys.Record, error) {
	r, ok := m.recs[id]
	if !ok || r.Owner != owner {
		return nil, keys.ErrNotFound
	}
	return r, nil
}

// Revoke implements keys.Store.
func (m *MemStore) Revoke(_ context.Context, owner, id string, now time.Time) (keys.Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return keys.Record{}, false, m.Fail
	}
	r, err := m.owned(owner, id)
	if err != nil {
		return keys.Record{}, false, err
	}
	if r.RevokedAt != nil && !r.RevokedAt.After(now) {
		return clone(r), false, nil
	}
	t := now
	r.RevokedAt = &t
	delete(m.published, id)
	return clone(r), true, nil
}

// Rotate implements keys.Store.
func (m *MemStore) Rotate(_ context.Context, owner, id string, build func(keys.Record) (*keys.Record, error), revokeAt, now time.Time) (keys.Record, keys.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return keys.Record{}, keys.Record{}, m.Fail
	}
	r, err := m.owned(owner, id)
	if err != nil {
		return keys.Record{}, keys.Record{}, err
	}
	if r.RevokedAt != nil || r.ReplacedBy != "" || r.Status(now) != keys.StatusActive {
		return keys.Record{}, keys.Record{}, keys.ErrNotActive
	}
	rec, err := build(clone(r))
	if err != nil {
		return keys.Record{}, keys.Record{}, err
	}
	saved := r.RevokedAt
	t := revokeAt
	r.RevokedAt = &t
	if err := m.insert(rec); err != nil {
		r.RevokedAt = saved
		return keys.Record{}, keys.Record{}, err
	}
	r.ReplacedBy = rec.ID
	return clone(r), clone(m.recs[rec.ID]), nil
}

// ByKID implements keys.Store.
func (m *MemStore) ByKID(_ context.Context, kid string) (keys.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return keys.Record{}, m.Fail
	}
	for _, r := range m.recs {
		if r.KID == kid {
			return clone(r), nil
		}
	}
	return keys.Record{}, keys.ErrNotFound
}

// Rehash implements keys.Store.
func (m *MemStore) Rehash(_ context.Context, id, oldPepper string, mac []byte, pepperID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	if r, ok := m.recs[id]; ok && r.PepperID == oldPepper {
		r.MAC, r.PepperID = slices.Clone(mac), pepperID
	}
	return nil
}

// TouchLastUsed implements keys.Toucher.
func (m *MemStore) TouchLastUsed(_ context.Context, used map[string]time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	for id, t := range used {
		if r, ok := m.recs[id]; ok && (r.LastUsedAt == nil || r.LastUsedAt.Before(t)) {
			v := t
			r.LastUsedAt = &v
		}
	}
	return nil
}

// PendingRevocations implements keys.RevocationQueue.
func (m *MemStore) PendingRevocations(_ context.Context, now time.Time, limit int) ([]keys.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return nil, m.Fail
	}
	var out []keys.Record
	for id, r := range m.recs {
		if _, done := m.published[id]; !done && r.RevokedAt != nil && !r.RevokedAt.After(now) {
			out = append(out, clone(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RevokedAt.Before(*out[j].RevokedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// MarkPublished implements keys.RevocationQueue.
func (m *MemStore) MarkPublished(_ context.Context, ids []string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	for _, id := range ids {
		if r, ok := m.recs[id]; ok && r.RevokedAt != nil && !r.RevokedAt.After(at) {
			if _, done := m.published[id]; !done {
				m.published[id] = at
			}
		}
	}
	return nil
}

// Roles is an in-memory keys.RoleSource: subject → Owner.
type Roles struct {
	mu     sync.Mutex
	owners map[string]keys.Owner
	calls  int
	// Fail, when set, is returned by every lookup.
	Fail error
}

var _ keys.RoleSource = (*Roles)(nil)

// NewRoles returns an empty role source.
func NewRoles() *Roles { return &Roles{owners: map[string]keys.Owner{}} }

// Set adds or replaces a user.
func (r *Roles) Set(o keys.Owner) {
	r.mu.Lock()
	r.owners[o.Subject] = o
	r.mu.Unlock()
}

// Delete removes a user.
func (r *Roles) Delete(subject string) {
	r.mu.Lock()
	delete(r.owners, subject)
	r.mu.Unlock()
}

// Calls counts lookups.
func (r *Roles) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// Owner implements keys.RoleSource.
func (r *Roles) Owner(_ context.Context, subject string) (keys.Owner, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.Fail != nil {
		return keys.Owner{}, r.Fail
	}
	o, ok := r.owners[subject]
	if !ok {
		return keys.Owner{}, keys.ErrOwnerNotFound
	}
	o.RealmRoles = slices.Clone(o.RealmRoles)
	return o, nil
}

// Publisher records revocations.
type Publisher struct {
	mu   sync.Mutex
	kids []string
	// Fail, when set, is returned by every publish.
	Fail error
}

var _ keys.Publisher = (*Publisher)(nil)

// PublishRevocation implements keys.Publisher.
func (p *Publisher) PublishRevocation(_ context.Context, kid string, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Fail != nil {
		return p.Fail
	}
	p.kids = append(p.kids, kid)
	return nil
}

// KIDs returns the announced key ids in order.
func (p *Publisher) KIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.kids)
}

// ErrDown is a convenient outage error.
var ErrDown = errors.New("keystest: dependency down")

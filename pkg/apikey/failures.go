package apikey

import (
	"hash/maphash"
	"sync"
	"time"
)

// failureLimiter limits failed authentications per client with GCRA — the
// arithmetic of pkg/ratelimit's Local (emission interval T = Period/Rate,
// tolerance τ = Burst·T) — extended with what ratelimit's API cannot express:
// a check that does not charge, and reservations.
//
// A lookup first reserves a cell (reserve): it is allowed only if the
// client's failures so far PLUS its lookups still in flight would fit, as if
// every pending lookup were going to fail. Nothing is charged. When the
// lookup ends, release charges one cell if the key was rejected and frees the
// reservation either way. So however concurrent the requests, a client
// causes at most Burst + elapsed/T lookups that fail — the property that
// protects llm-api and PostgreSQL from anyone computing well-formed keys.
//
// It is bounded like ratelimit.Local: when a shard is full, states that
// carry nothing (TAT passed, nothing pending, not blocked) are dropped first,
// then arbitrary idle ones, down to 7/8 of the bound.
type failureLimiter struct {
	emission, tolerance int64 // ns
	seed                maphash.Seed
	shards              [failShards]failShard
	perShard            int
}

const failShards = 16

type failShard struct {
	mu sync.Mutex
	m  map[string]*failState
}

type failState struct {
	tat          int64 // theoretical arrival time of the failures, unix ns
	blockedUntil int64 // unix ns: blocked by the shared (Redis) count until
	pending      int64 // lookups in flight
}

func newFailureLimiter(rate int, period time.Duration, burst, maxClients int) *failureLimiter {
	f := &failureLimiter{
		emission: int64(period) / int64(rate),
		seed:     maphash.MakeSeed(),
		perShard: max(1, (maxClients+failShards-1)/failShards),
	}
	f.tolerance = int64(burst) * f.emission
	for i := range f.shards {
		f.shards[i].m = make(map[string]*failState)
	}
	return f
}

func (f *failureLimiter) shard(client string) *failShard {
	return &f.shards[maphash.String(f.seed, client)%failShards]
}

// reserve checks, without charging, whether client may make one more lookup
// at now (unix ns) and, if so, reserves it. When it may not, it returns how
// long until it may.
func (f *failureLimiter) reserve(client string, now int64) (retryAfter time.Duration, ok bool) {
	sh := f.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[client]
	if s == nil {
		if len(sh.m) >= f.perShard {
			sh.makeRoom(now, f.perShard)
		}
		s = &failState{}
		sh.m[client] = s
	}
	if now < s.blockedUntil {
		return time.Duration(s.blockedUntil - now), false
	}
	tat := max(s.tat, now)
	if next := tat + (s.pending+1)*f.emission; next-now > f.tolerance {
		return time.Duration(next - now - f.tolerance), false
	}
	s.pending++
	return 0, true
}

// check reports, without reserving, whether client could make one more
// lookup at now — reserve's test. A request that joins a lookup already in
// flight for its key makes none of its own: it is checked (so a client over
// its limit is still refused) but reserves nothing, so a client sending one
// key on many connections is not refused for its own concurrency.
func (f *failureLimiter) check(client string, now int64) (retryAfter time.Duration, ok bool) {
	sh := f.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[client]
	if s == nil {
		return 0, true
	}
	if now < s.blockedUntil {
		return time.Duration(s.blockedUntil - now), false
	}
	tat := max(s.tat, now)
	if next := tat + (s.pending+1)*f.emission; next-now > f.tolerance {
		return time.Duration(next - now - f.tolerance), false
	}
	return 0, true
}

// charge counts one failure of client that held no reservation (a request
// that joined another's lookup and was rejected with it).
func (f *failureLimiter) charge(client string, now int64) {
	sh := f.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[client]
	if s == nil {
		if len(sh.m) >= f.perShard {
			sh.makeRoom(now, f.perShard)
		}
		s = &failState{}
		sh.m[client] = s
	}
	s.tat = max(s.tat, now) + f.emission
}

// release ends a reservation of client, charging one failure if failed.
func (f *failureLimiter) release(client string, now int64, failed bool) {
	sh := f.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[client]
	if s == nil { // dropped while full: start over, keep the failure
		if !failed {
			return
		}
		s = &failState{}
		sh.m[client] = s
	}
	if s.pending > 0 {
		s.pending--
	}
	if failed {
		s.tat = max(s.tat, now) + f.emission
	}
}

// block refuses client's lookups until until (unix ns): the failures of
// every edge instance together (Redis) exceed the limit.
func (f *failureLimiter) block(client string, until int64) {
	sh := f.shard(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.m[client]
	if s == nil {
		s = &failState{}
		sh.m[client] = s
	}
	s.blockedUntil = max(s.blockedUntil, until)
}

// makeRoom drops idle states (nothing pending, nothing owed, not blocked),
// then arbitrary states with nothing pending, until the shard is at most 7/8
// full; the O(n) sweep then runs at most once every capacity/8 inserts.
// States with lookups in flight are kept: they are bounded by the number of
// concurrent requests.
func (sh *failShard) makeRoom(now int64, capacity int) {
	for k, s := range sh.m {
		if s.pending == 0 && s.tat <= now && s.blockedUntil <= now {
			delete(sh.m, k)
		}
	}
	target := capacity - max(capacity/8, 1)
	for k, s := range sh.m {
		if len(sh.m) <= target {
			break
		}
		if s.pending == 0 {
			delete(sh.m, k)
		}
	}
}

func (f *failureLimiter) len() int {
	n := 0
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

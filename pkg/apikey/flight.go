package apikey

import "sync"

// flightGroup runs one lookup per key at a time: requests for a key that is
// already being looked up wait for that lookup's result (single flight).
// It is keyed by the SHA-256 of the key, like the cache.
type flightGroup struct {
	mu sync.Mutex
	m  map[hashKey]*flight
}

// flight is one lookup in progress; res is valid once done is closed.
type flight struct {
	done chan struct{}
	res  flightResult
}

// flightResult is a lookup's outcome: an entry (valid key or rejection) or a
// failure; src says where it came from ("redis", "validator").
type flightResult struct {
	e   *entry
	err error
	src string
}

// join returns the flight of h, starting one (leader true) if none runs and
// lead allows it (the leader's failure-limit reservation, taken under the
// group's lock so that no request can join a flight that never starts); f
// is nil when lead refused.
func (g *flightGroup) join(h *hashKey, lead func() bool) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[*h]; f != nil {
		return f, false
	}
	if !lead() {
		return nil, false
	}
	f = &flight{done: make(chan struct{})}
	g.m[*h] = f
	return f, true
}

// finish publishes the result of f and lets the next request for h start a
// new flight.
func (g *flightGroup) finish(h *hashKey, f *flight, res flightResult) {
	g.mu.Lock()
	if g.m[*h] == f {
		delete(g.m, *h)
	}
	g.mu.Unlock()
	f.res = res
	close(f.done)
}

// Package ratelimit decides whether a request may proceed under one or more
// rate limits (e.g. 10/s and 600/min and 10000/h for one subject), exactly and
// for every edge instance at once.
//
// The algorithm is GCRA (generic cell rate algorithm, a leaky bucket kept as
// one "theoretical arrival time" per limit) in integer microseconds. The shared
// state lives in Redis: one Lua script, run with EVALSHA in one round trip,
// reads the server clock once, checks every limit of the request and charges
// all of them or none. Every key of one subject carries the hash tag
// {subject}, so the script also runs on Redis Cluster. When Redis fails or is
// slower than the decision timeout, the configured policy takes over: an
// in-process GCRA with the same semantics (the default), allow, or deny
// (ErrUnavailable). Subjects that are over their limit are remembered in
// process and denied without a round trip until their retry-after passes.
//
// Local is the in-process limiter on its own (tests, single-instance use and the
// fallback).
//
// It is not a quota or billing store (no persistence guarantees: a Redis
// restart forgives all debts), not a concurrency limiter (it counts request
// starts, not requests in flight), and it does not decide whom to limit: the
// caller chooses the subject (identity, key id, client address) and the limits.
package ratelimit

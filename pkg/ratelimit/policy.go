package ratelimit

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxLimits is the most limits one Policy may hold.
const MaxLimits = 16

// maxSubjectLen is the longest subject used as is in keys; longer ones are
// replaced by a hash so a huge header value cannot make huge Redis keys.
const maxSubjectLen = 128

// Policy is a compiled, immutable set of limits checked together: a request
// is allowed only if every limit allows it, and then charged to all of them.
// Build it once (per configuration), not per request; it is safe for
// concurrent use.
type Policy struct {
	limits    []Limit
	emission  []int64 // µs per cell
	tolerance []int64 // Burst × emission, µs
	minBurst  int64
	id        string   // identifies the limits (deny-cache key)
	argv      []any    // script ARGV for cost 1: increment, tolerance, fresh PX per limit
	suffix    []string // ":" + Name
}

// NewPolicy validates and compiles limits (defaults applied: Name from the
// period, Burst = Rate). It returns an error wrapping ErrInvalidLimit for no
// limits, more than MaxLimits, an invalid limit or two limits with one Name.
func NewPolicy(limits ...Limit) (*Policy, error) {
	if len(limits) == 0 || len(limits) > MaxLimits {
		return nil, fmt.Errorf("%w: a policy needs 1 to %d limits, got %d", ErrInvalidLimit, MaxLimits, len(limits))
	}
	p := &Policy{
		limits:    make([]Limit, len(limits)),
		emission:  make([]int64, len(limits)),
		tolerance: make([]int64, len(limits)),
		argv:      make([]any, 0, 3*len(limits)),
		suffix:    make([]string, len(limits)),
	}
	var id strings.Builder
	for i, l := range limits {
		l = l.withDefaults()
		t, tau, err := l.validate()
		if err != nil {
			return nil, err
		}
		for _, prev := range p.limits[:i] {
			if prev.Name == l.Name {
				return nil, fmt.Errorf("%w: two limits named %q", ErrInvalidLimit, l.Name)
			}
		}
		p.limits[i], p.emission[i], p.tolerance[i] = l, t, tau
		if i == 0 || int64(l.Burst) < p.minBurst {
			p.minBurst = int64(l.Burst)
		}
		p.argv = append(p.argv, strconv.FormatInt(t, 10), strconv.FormatInt(tau, 10), strconv.FormatInt(freshPX(t), 10))
		p.suffix[i] = ":" + l.Name
		fmt.Fprintf(&id, "%s=%d/%d;", l.Name, t, tau)
	}
	p.id = id.String()
	return p, nil
}

// MustPolicy is NewPolicy that panics on error, for limits fixed at compile
// time (tests, examples). Never use it on configuration input.
func MustPolicy(limits ...Limit) *Policy {
	p, err := NewPolicy(limits...)
	if err != nil {
		panic(err)
	}
	return p
}

// Limits returns a copy of the policy's limits with defaults applied, in the
// order given to NewPolicy (the order of Result.Limits).
func (p *Policy) Limits() []Limit { return append([]Limit(nil), p.limits...) }

// String lists the limits, e.g. "10/s, 600/min".
func (p *Policy) String() string {
	parts := make([]string, len(p.limits))
	for i, l := range p.limits {
		parts[i] = l.String()
	}
	return strings.Join(parts, ", ")
}

// check validates the per-request inputs shared by every limiter.
func (p *Policy) check(subject string, cost int) error {
	if p == nil {
		return fmt.Errorf("%w: nil policy", ErrInvalidLimit)
	}
	if subject == "" {
		return ErrInvalidSubject
	}
	if cost < 1 || int64(cost) > p.minBurst {
		return fmt.Errorf("%w: cost %d outside 1..%d (the smallest burst)", ErrInvalidCost, cost, p.minBurst)
	}
	return nil
}

// subjectKey returns the subject as used in keys: as is up to maxSubjectLen
// bytes, else "#" + a hash of it. A subject holding '}' is hashed as well,
// so the key's hash tag {subject} is always the whole subject: with a
// leading '}' the tag would be empty, Redis Cluster would hash each key
// whole, and the keys of one decision would land in different slots
// (CROSSSLOT).
func subjectKey(subject string) string {
	if len(subject) <= maxSubjectLen && !strings.Contains(subject, "}") {
		return subject
	}
	sum := sha256.Sum256([]byte(subject))
	return "#" + base64.RawURLEncoding.EncodeToString(sum[:24])
}

// decide is GCRA at now (µs) for every limit at once. tats holds each limit's
// stored theoretical arrival time (0 when absent); when every limit allows
// cost more cells, tats is advanced and decide reports true. debts receives
// each limit's TAT minus now after the decision (what Result is built from).
func (p *Policy) decide(now, cost int64, tats, debts []int64) bool {
	allowed := true
	for i, tat := range tats {
		if tat < now {
			tat = now
		}
		if tat+cost*p.emission[i]-now > p.tolerance[i] {
			allowed = false
		}
		debts[i] = tat - now
	}
	if !allowed {
		return false
	}
	for i := range tats {
		debts[i] += cost * p.emission[i]
		tats[i] = now + debts[i]
	}
	return true
}

// result builds the Result of a decision from each limit's debt (TAT minus
// now after the decision, µs).
func (p *Policy) result(allowed bool, cost int64, debts []int64) Result {
	r := Result{Allowed: allowed, Limits: make([]LimitResult, len(p.limits))}
	for i, d := range debts {
		d = max(d, 0)
		t, tau := p.emission[i], p.tolerance[i]
		lr := LimitResult{Limit: p.limits[i], ResetAfter: us(d)}
		if tau > d {
			lr.Remaining = int((tau - d) / t)
		}
		if !allowed {
			if wait := d + cost*t - tau; wait > 0 {
				lr.RetryAfter = us(wait)
			}
		}
		r.Limits[i] = lr
	}
	r.Decider = 0
	for i, lr := range r.Limits[1:] {
		best := r.Limits[r.Decider]
		i++
		if allowed {
			if lr.Remaining < best.Remaining || lr.Remaining == best.Remaining && lr.ResetAfter > best.ResetAfter {
				r.Decider = i
			}
		} else if lr.RetryAfter > best.RetryAfter {
			r.Decider = i
		}
	}
	return r
}

// fresh is the Result of an allowed decision on an empty bucket (the allow
// fail policy).
func (p *Policy) fresh(cost int64) Result {
	debts := make([]int64, len(p.limits))
	for i := range debts {
		debts[i] = cost * p.emission[i]
	}
	return p.result(true, cost, debts)
}

// freshPX is the PX (ms) of a key whose TAT is inc µs ahead: rounded up, so
// the key never expires before its TAT passes.
func freshPX(inc int64) int64 { return (inc + 999) / 1000 }

// scriptArgs appends the scripts' ARGV for cost: per limit, the increment
// cost × T, the tolerance and the fresh key's PX.
func (p *Policy) scriptArgs(args []any, cost int64) []any {
	if cost == 1 {
		return append(args, p.argv...)
	}
	for i, t := range p.emission {
		inc := cost * t
		args = append(args, strconv.FormatInt(inc, 10), p.argv[3*i+1], strconv.FormatInt(freshPX(inc), 10))
	}
	return args
}

func us(n int64) time.Duration { return time.Duration(n) * time.Microsecond }

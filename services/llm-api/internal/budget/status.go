package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Window is one limited window of a scope as it stands: Name is the
// Denial's (tpm, tpd, tpmo, cpd, cpmo); token windows count tokens, cost
// windows nano-USD. Used includes what requests still in flight have
// reserved; Remaining is never negative (an overshoot can take Used past
// Limit). Reset is when the window is whole again: the minute bucket
// refilled, the UTC day or month over.
type Window struct {
	Name                   string
	Limit, Used, Remaining int64
	Reset                  time.Duration
}

// ScopeStatus is one scope's windows. For a Stored scope whose limits are
// stored in Redis (SetLimits), Stored holds them and they replace
// Scope.Limits, exactly as the reservation script does.
type ScopeStatus struct {
	Scope
	Stored  *StoredLimits
	Windows []Window
}

// Status reads the scopes of subject as the next reservation would see
// them — each stored limits entry, minute bucket and day and month
// counters — in one pipeline: every key is in the subject's slot, so one
// node answers (Redis's TIME, for the minute buckets, may come from another
// node of a Cluster, in parallel). Only limited windows are listed;
// counters exist for a window only while it is limited.
func (s *Store) Status(ctx context.Context, subject string, scopes []Scope) ([]ScopeStatus, error) {
	now := s.now()
	day, month, dayEnd, monthEnd := periods(now)
	p := prefix(subject)
	type cmds struct {
		lim   *redis.SliceCmd
		tat   *redis.StringCmd
		d, mo *redis.SliceCmd
	}
	pipe := s.rdb.Pipeline()
	clock := pipe.Time(ctx)
	cs := make([]cmds, len(scopes))
	for i, sc := range scopes {
		if sc.Stored {
			cs[i].lim = pipe.HMGet(ctx, limitsKey(subject, sc.Part), "set", "tpm", "tpd", "tpmo", "cpd", "cpmo", "models")
		}
		cs[i].tat = pipe.Get(ctx, p+sc.Part+":tpm")
		cs[i].d = pipe.HMGet(ctx, p+sc.Part+":d:"+day, "t", "c")
		cs[i].mo = pipe.HMGet(ctx, p+sc.Part+":M:"+month, "t", "c")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("budget status: %w", err)
	}
	redisNow := clock.Val()
	if clock.Err() != nil || redisNow.IsZero() {
		redisNow = now
	}
	nowUS := redisNow.UnixMicro()
	untilDay := time.Unix(dayEnd, 0).Sub(now)
	untilMonth := time.Unix(monthEnd, 0).Sub(now)
	out := make([]ScopeStatus, len(scopes))
	for i, sc := range scopes {
		st := ScopeStatus{Scope: sc}
		if c := cs[i].lim; c != nil {
			if c.Err() != nil {
				return nil, fmt.Errorf("budget status: %w", c.Err())
			}
			if v := c.Val(); len(v) == 7 && v[0] != nil {
				st.Stored = storedOf(v)
				st.Limits = st.Stored.Limits
			}
		}
		if err := cs[i].tat.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("budget status: %w", err)
		}
		for _, c := range []*redis.SliceCmd{cs[i].d, cs[i].mo} {
			if c.Err() != nil {
				return nil, fmt.Errorf("budget status: %w", c.Err())
			}
		}
		l := st.Limits
		if l.TokensPerMinute > 0 {
			st.Windows = append(st.Windows, minute(l.TokensPerMinute, cs[i].tat.Val(), nowUS))
		}
		d, mo := cs[i].d.Val(), cs[i].mo.Val()
		period := func(name string, limit int64, v []any, field int, reset time.Duration) {
			if limit <= 0 {
				return
			}
			used := num(v, field)
			st.Windows = append(st.Windows, Window{Name: name, Limit: limit, Used: used, Remaining: max(limit-used, 0), Reset: reset})
		}
		period("tpd", l.TokensPerDay, d, 0, untilDay)
		period("tpmo", l.TokensPerMonth, mo, 0, untilMonth)
		period("cpd", l.NanoUSDPerDay, d, 1, untilDay)
		period("cpmo", l.NanoUSDPerMonth, mo, 1, untilMonth)
		out[i] = st
	}
	return out, nil
}

// minute is the GCRA bucket of a limit of tpm tokens a minute whose
// theoretical arrival time (µs, Redis's clock) is tat: what is free now
// and when it is full again, as the reservation script computes them.
func minute(tpm int64, tat string, nowUS int64) Window {
	const minuteUS = 60_000_000
	t, _ := strconv.ParseFloat(tat, 64)
	if t < float64(nowUS) {
		t = float64(nowUS)
	}
	per := float64(minuteUS) / float64(tpm)
	room := int64(math.Floor((float64(nowUS) + minuteUS - t) / per))
	room = max(min(room, tpm), 0)
	reset := time.Duration(math.Ceil(t-float64(nowUS))) * time.Microsecond
	return Window{Name: "tpm", Limit: tpm, Used: tpm - room, Remaining: room, Reset: reset}
}

// num reads element i of an HMGET reply as an integer (absent: 0).
func num(v []any, i int) int64 {
	if i >= len(v) {
		return 0
	}
	s, _ := v[i].(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// storedOf reads an HMGET of set, tpm, tpd, tpmo, cpd, cpmo, models.
func storedOf(v []any) *StoredLimits {
	l := &StoredLimits{Limits: Limits{TokensPerMinute: num(v, 1), TokensPerDay: num(v, 2), TokensPerMonth: num(v, 3),
		NanoUSDPerDay: num(v, 4), NanoUSDPerMonth: num(v, 5)}}
	if m, _ := v[6].(string); m != "" {
		l.Models = strings.Split(m, "\n")
	}
	return l
}

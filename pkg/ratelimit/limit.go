package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bounds of a Limit. They keep every microsecond value the script handles
// below 2^53, where Lua numbers (doubles) stop being exact integers.
const (
	MaxRate   = 1_000_000_000
	MaxBurst  = 1_000_000_000
	MaxPeriod = 366 * 24 * time.Hour
	// maxTolerance bounds Burst × emission interval (about 35 years).
	maxTolerance = int64(1) << 50
)

// Limit is one rate: Rate cells per Period, of which up to Burst may be used
// at once. A request costs one cell unless the caller says otherwise.
//
// GCRA spaces cells Period/Rate apart (the emission interval, rounded to the
// nearest microsecond) and tolerates Burst cells of debt: a fresh subject may
// spend Burst cells at once, then one more every emission interval.
type Limit struct {
	// Name identifies the limit within a subject: it is the suffix of its
	// Redis key and the window name of X-RateLimit-*-<Window> headers.
	// Default: "second", "minute", "hour" or "day" for those periods, else
	// the period as a Go duration ("10s", "1m30s"). Letters, digits, '.', '_'
	// and '-' only, at most 32 bytes; unique within a Policy.
	Name string
	// Rate is the number of cells per Period: 1 to MaxRate.
	Rate int
	// Period is the window the rate is expressed in: 1µs to MaxPeriod, with
	// Period/Rate at least 1µs.
	Period time.Duration
	// Burst is how many cells a fresh subject may spend at once. Default
	// (0): Rate. 1 to MaxBurst.
	Burst int
}

// String renders the limit the way ParseLimit reads it, e.g. "10/s" or
// "100/10s burst 20".
func (l Limit) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(l.Rate))
	b.WriteByte('/')
	switch l.Period {
	case time.Second:
		b.WriteString("s")
	case time.Minute:
		b.WriteString("min")
	case time.Hour:
		b.WriteString("h")
	case 24 * time.Hour:
		b.WriteString("day")
	default:
		b.WriteString(l.Period.String())
	}
	if l.Burst != 0 && l.Burst != l.Rate {
		b.WriteString(" burst ")
		b.WriteString(strconv.Itoa(l.Burst))
	}
	return b.String()
}

// withDefaults returns the limit with Name and Burst filled in.
func (l Limit) withDefaults() Limit {
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	if l.Name == "" {
		l.Name = periodName(l.Period)
	}
	return l
}

func periodName(d time.Duration) string {
	switch d {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return d.String()
}

// validate checks a limit after withDefaults and returns its emission
// interval and tolerance in microseconds.
func (l Limit) validate() (emission, tolerance int64, err error) {
	bad := func(reason string) (int64, int64, error) {
		return 0, 0, fmt.Errorf("%w %s: %s", ErrInvalidLimit, l, reason)
	}
	switch {
	case l.Rate < 1 || l.Rate > MaxRate:
		return bad("rate must be between 1 and 1000000000")
	case l.Burst < 1 || l.Burst > MaxBurst:
		return bad("burst must be between 1 and 1000000000")
	case l.Period < time.Microsecond || l.Period > MaxPeriod:
		return bad("period must be between 1µs and 366 days")
	case !validName(l.Name):
		return bad("name must be 1-32 letters, digits, '.', '_' or '-'")
	}
	us := l.Period.Microseconds()
	emission = (us + int64(l.Rate)/2) / int64(l.Rate)
	if us < int64(l.Rate) {
		return bad("period/rate must be at least 1µs")
	}
	if emission > maxTolerance/int64(l.Burst) {
		return bad("burst × period/rate is too long")
	}
	return emission, emission * int64(l.Burst), nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ParseLimit reads one limit: "RATE/PERIOD" with an optional " burst N".
// PERIOD is a unit (s, sec, second, m, min, minute, h, hr, hour, d, day) or a
// Go duration ("10s", "1m30s", "500ms"). Examples: "10/s", "600/min",
// "10000/h", "100/10s burst 20". The Name is the default for the period.
func ParseLimit(s string) (Limit, error) {
	orig := s
	bad := func(reason string) (Limit, error) {
		if len(orig) > 64 {
			orig = orig[:64] + "..."
		}
		return Limit{}, fmt.Errorf("%w %q: %s", ErrInvalidLimit, orig, reason)
	}
	fields := strings.Fields(s)
	var l Limit
	switch len(fields) {
	case 1:
	case 3:
		if !strings.EqualFold(fields[1], "burst") {
			return bad(`want "RATE/PERIOD" or "RATE/PERIOD burst N"`)
		}
		n, err := parseCount(fields[2])
		if err != nil {
			return bad("burst is not a positive integer")
		}
		l.Burst = n
	default:
		return bad(`want "RATE/PERIOD" or "RATE/PERIOD burst N"`)
	}
	rate, period, ok := strings.Cut(fields[0], "/")
	if !ok {
		return bad(`missing "/"`)
	}
	n, err := parseCount(rate)
	if err != nil {
		return bad("rate is not a positive integer")
	}
	l.Rate = n
	d, ok := parsePeriod(period)
	if !ok {
		return bad("unknown period")
	}
	l.Period = d
	l = l.withDefaults()
	if _, _, err := l.validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// ParseLimits reads a comma-separated list of limits, e.g.
// "10/s, 600/min, 10000/h".
func ParseLimits(s string) ([]Limit, error) {
	var out []Limit
	for part := range strings.SplitSeq(s, ",") {
		l, err := ParseLimit(part)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func parseCount(s string) (int, error) {
	if s == "" || len(s) > 10 || s[0] == '+' || s[0] == '-' {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, strconv.ErrSyntax
	}
	return n, nil
}

func parsePeriod(s string) (time.Duration, bool) {
	switch strings.ToLower(s) {
	case "s", "sec", "second":
		return time.Second, true
	case "m", "min", "minute":
		return time.Minute, true
	case "h", "hr", "hour":
		return time.Hour, true
	case "d", "day":
		return 24 * time.Hour, true
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

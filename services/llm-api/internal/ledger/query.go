package ledger

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
)

// Bounds of a usage query.
const (
	// MaxRangeDays is the longest range, both ends included.
	MaxRangeDays = 366
	// MaxQueryBytes bounds the raw query string.
	MaxQueryBytes = 2048
	// MaxRows is the most rows an answer carries (Truncated beyond).
	MaxRows = 5000
)

// QueryError is a refused usage query (HTTP 400): a stable code and a
// message naming the parameter, never echoing its value.
type QueryError struct {
	Code    string
	Message string
}

func (e *QueryError) Error() string { return e.Code + ": " + e.Message }

// CodeInvalidDateRange is the code of every refused from/to.
const CodeInvalidDateRange = "invalid_date_range"

// ParseQuery reads the query string of GET /v1/usage — from and to, UTC
// days YYYY-MM-DD, both included; by default from the first day of now's
// UTC month to now's day; at most MaxRangeDays — and, with admin, of GET
// /v1/admin/usage, which also takes subject (one user; default: all). The
// Query's To is the day after to (exclusive); Limit is MaxRows + 1.
func ParseQuery(raw string, now time.Time, admin bool) (Query, *QueryError) {
	allowed := []string{"from", "to"}
	if admin {
		allowed = append(allowed, "subject")
	}
	if len(raw) > MaxQueryBytes {
		return Query{}, &QueryError{"query_too_long", fmt.Sprintf("the query string exceeds %d bytes", MaxQueryBytes)}
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return Query{}, &QueryError{"invalid_query", "the query string is malformed"}
	}
	for _, name := range slices.Sorted(maps.Keys(v)) {
		switch vals := v[name]; {
		case !slices.Contains(allowed, name):
			return Query{}, &QueryError{"unknown_parameter", "unknown query parameter (allowed: " + strings.Join(allowed, ", ") + ")"}
		case len(vals) != 1:
			return Query{}, &QueryError{"duplicate_parameter", "parameter " + name + " is given more than once"}
		}
	}
	now = now.UTC()
	y, m, d := now.Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	from, to := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), today
	if s, ok := v["from"]; ok {
		if from, ok = day(s[0]); !ok {
			return Query{}, &QueryError{CodeInvalidDateRange, "from must be a day YYYY-MM-DD"}
		}
	}
	if s, ok := v["to"]; ok {
		if to, ok = day(s[0]); !ok {
			return Query{}, &QueryError{CodeInvalidDateRange, "to must be a day YYYY-MM-DD"}
		}
	}
	switch {
	case to.Before(from):
		return Query{}, &QueryError{CodeInvalidDateRange, "from must not be after to"}
	case to.Sub(from) >= MaxRangeDays*24*time.Hour:
		return Query{}, &QueryError{CodeInvalidDateRange, fmt.Sprintf("the range spans more than %d days", MaxRangeDays)}
	}
	q := Query{From: from, To: to.AddDate(0, 0, 1), Limit: MaxRows + 1}
	if s, ok := v["subject"]; ok {
		if !budget.ValidSubject(s[0]) {
			return Query{}, &QueryError{"invalid_subject", fmt.Sprintf("subject must be 1-%d characters of A-Z a-z 0-9 . _ : @ -", budget.MaxSubjectLen)}
		}
		q.Subject = s[0]
	}
	return q, nil
}

// day parses exactly YYYY-MM-DD (years 2000..9999).
func day(s string) (time.Time, bool) {
	if len(s) != len(time.DateOnly) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Year() < 2000 || t.Format(time.DateOnly) != s {
		return time.Time{}, false
	}
	return t, true
}

// Days returns q's range as the API names it: the first and the last day
// (To is exclusive).
func (q Query) Days() (from, to string) {
	return q.From.Format(time.DateOnly), q.To.AddDate(0, 0, -1).Format(time.DateOnly)
}

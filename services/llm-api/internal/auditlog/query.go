// Package auditlog is llm-api's side of pkg/audit: the ingester that moves
// events from the Redis stream into PostgreSQL (consumer group,
// acknowledged after an idempotent insert keyed by the stream id), the
// retention loop, and the admin query language of
// GET /v1/admin/audit/events and /stats (every parameter validated, opaque
// cursors).
//
// It holds no SQL: package store implements Store.
package auditlog

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
)

// Limits of a query.
const (
	DefaultLimit = 50
	MaxLimit     = 200
	// MaxQueryBytes bounds the raw query string.
	MaxQueryBytes = 2048
)

// Query selects stored events, newest first.
type Query struct {
	Severity audit.Severity // "": any
	Action   audit.Action   // "": any
	// Actor matches the subject or the key id.
	Actor string
	Since time.Time // zero: no bound
	Limit int
	// Before is the cursor: only events with seq < Before (0: none).
	Before int64
}

// StatsQuery selects the window of /stats.
type StatsQuery struct {
	Since time.Time
}

// QueryError is a refused parameter: a stable code and a message naming
// the parameter (never echoing its value).
type QueryError struct {
	Code    string
	Message string
}

func (e *QueryError) Error() string { return e.Code + ": " + e.Message }

func qerr(code, format string, args ...any) *QueryError {
	return &QueryError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// single returns the one value of name, refusing repeats.
func single(v url.Values, name string) (string, bool, *QueryError) {
	vals, ok := v[name]
	if !ok {
		return "", false, nil
	}
	if len(vals) != 1 {
		return "", false, qerr("duplicate_parameter", "parameter %s is given more than once", name)
	}
	return vals[0], true, nil
}

func parseValues(raw string, allowed ...string) (url.Values, *QueryError) {
	if len(raw) > MaxQueryBytes {
		return nil, qerr("query_too_long", "the query string exceeds %d bytes", MaxQueryBytes)
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, qerr("invalid_query", "the query string is malformed")
	}
	for name := range v {
		ok := false
		for _, a := range allowed {
			if name == a {
				ok = true
			}
		}
		if !ok {
			return nil, qerr("unknown_parameter", "unknown query parameter (allowed: %s)", strings.Join(allowed, ", "))
		}
	}
	return v, nil
}

func parseSince(v url.Values, now time.Time) (time.Time, bool, *QueryError) {
	s, ok, qe := single(v, "since")
	if qe != nil || !ok {
		return time.Time{}, false, qe
	}
	if len(s) > 40 {
		return time.Time{}, false, qerr("invalid_since", "since must be an RFC 3339 time")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}, false, qerr("invalid_since", "since must be an RFC 3339 time after 2000")
	}
	if t.After(now.Add(24 * time.Hour)) {
		return time.Time{}, false, qerr("invalid_since", "since lies in the future")
	}
	return t.UTC(), true, nil
}

// ParseEventsQuery parses the raw query string of /v1/admin/audit/events.
func ParseEventsQuery(raw string, now time.Time) (Query, *QueryError) {
	q := Query{Limit: DefaultLimit}
	v, qe := parseValues(raw, "severity", "action", "actor", "since", "limit", "cursor")
	if qe != nil {
		return q, qe
	}
	if s, ok, qe := single(v, "severity"); qe != nil {
		return q, qe
	} else if ok {
		q.Severity = audit.Severity(s)
		if !q.Severity.Valid() {
			return q, qerr("invalid_severity", "severity must be one of info, warning, critical")
		}
	}
	if s, ok, qe := single(v, "action"); qe != nil {
		return q, qe
	} else if ok {
		q.Action = audit.Action(s)
		if !q.Action.Valid() {
			return q, qerr("invalid_action", "action is not a known audit action")
		}
	}
	if s, ok, qe := single(v, "actor"); qe != nil {
		return q, qe
	} else if ok {
		probe := audit.Event{Time: now, Action: audit.ActionAuthDenied, Outcome: audit.OutcomeDenied,
			Severity: audit.SeverityInfo, Source: "query", Actor: audit.Actor{Subject: s}}
		if s == "" || probe.Validate() != nil {
			return q, qerr("invalid_actor", "actor must be a subject or key id (1-%d bytes of [A-Za-z0-9._:@/-])", audit.MaxSubject)
		}
		q.Actor = s
	}
	var ok bool
	if q.Since, ok, qe = parseSince(v, now); qe != nil {
		return q, qe
	}
	_ = ok
	if s, ok, qe := single(v, "limit"); qe != nil {
		return q, qe
	} else if ok {
		n, err := strconv.Atoi(s)
		if err != nil || len(s) > 4 || n < 1 || n > MaxLimit {
			return q, qerr("invalid_limit", "limit must be an integer from 1 to %d", MaxLimit)
		}
		q.Limit = n
	}
	if s, ok, qe := single(v, "cursor"); qe != nil {
		return q, qe
	} else if ok {
		seq, err := DecodeCursor(s)
		if err != nil {
			return q, qerr("invalid_cursor", "cursor is not one this server issued")
		}
		q.Before = seq
	}
	return q, nil
}

// ParseStatsQuery parses the raw query string of /v1/admin/audit/stats:
// since (default: 24 hours ago).
func ParseStatsQuery(raw string, now time.Time) (StatsQuery, *QueryError) {
	q := StatsQuery{Since: now.Add(-24 * time.Hour).UTC()}
	v, qe := parseValues(raw, "since")
	if qe != nil {
		return q, qe
	}
	t, ok, qe := parseSince(v, now)
	if qe != nil {
		return q, qe
	}
	if ok {
		q.Since = t
	}
	return q, nil
}

const cursorPrefix = "a1."

// EncodeCursor makes the opaque cursor of the page after seq.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// DecodeCursor reverses EncodeCursor, refusing anything else.
func DecodeCursor(s string) (int64, error) {
	if s == "" || len(s) > 64 {
		return 0, fmt.Errorf("cursor length")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, fmt.Errorf("cursor encoding")
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok || rest == "" || len(rest) > 19 || (len(rest) > 1 && rest[0] == '0') {
		return 0, fmt.Errorf("cursor format")
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return 0, fmt.Errorf("cursor format")
		}
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("cursor value")
	}
	return n, nil
}

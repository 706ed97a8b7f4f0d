// Package audit records who did what at the edge: a closed Event type
// (actions, outcomes and severities are enumerations, every other field is a
// bounded identifier), an Emitter that appends events to a Redis Stream
// without ever blocking the request path, and a Consumer that reads them
// back with a consumer group.
//
// An Event has no free-form field: no message, no header, no claim set.
// Every field is checked against a charset and a length bound, and values
// shaped like credentials (sk_ keys, JWTs: requestid.LooksLikeCredential)
// are refused, so an event cannot carry a secret even by mistake. An event
// is never lost for one unacceptable field: the emitter sanitizes it
// (Sanitize: the field emptied, or replaced — a request id by a generated
// one — and named in Event.Sanitized); only an event without a known action
// and outcome, with nothing to record, is refused. Stream contents are
// untrusted: Parse validates every field again when reading back.
//
// It is not a log: operational detail goes to the component's zerolog
// logger. Storage and queries are llm-api's.
package audit

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// Action is what was done. The set is closed.
type Action string

// Actions.
const (
	ActionAuthDenied      Action = "auth.denied"
	ActionAuthRateLimited Action = "auth.rate_limited"
	ActionAPIKeyCreated   Action = "apikey.created"
	ActionAPIKeyRevoked   Action = "apikey.revoked"
	ActionAPIKeyRotated   Action = "apikey.rotated"
	ActionGuestCreated    Action = "guest.created"
	ActionGuestDeleted    Action = "guest.deleted"
	ActionApprovalGranted Action = "approval.granted"
	ActionApprovalDenied  Action = "approval.denied"
	ActionConfigRejected  Action = "config.rejected"
	// ActionBudgetExhausted: a caller's period token or cost budget
	// refused a request (target "<scope>:<window>", once per window per
	// replica); ActionBudgetChanged: an administrator set or removed a
	// user's budget override (target the user's subject).
	ActionBudgetExhausted Action = "budget.exhausted"
	ActionBudgetChanged   Action = "budget.changed"
)

// Actions lists every action.
var Actions = []Action{ActionAuthDenied, ActionAuthRateLimited, ActionAPIKeyCreated, ActionAPIKeyRevoked,
	ActionAPIKeyRotated, ActionGuestCreated, ActionGuestDeleted, ActionApprovalGranted, ActionApprovalDenied,
	ActionConfigRejected, ActionBudgetExhausted, ActionBudgetChanged}

// Outcome says whether the action happened.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeDenied  Outcome = "denied"
	OutcomeFailure Outcome = "failure"
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{OutcomeSuccess, OutcomeDenied, OutcomeFailure}

// Severity ranks events for operators.
type Severity string

// Severities.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity.
var Severities = []Severity{SeverityInfo, SeverityWarning, SeverityCritical}

// Field bounds.
const (
	MaxRequestID = 128
	MaxSubject   = 128
	MaxKeyID     = 64
	MaxTarget    = 128
	MaxReason    = 64
	MaxSource    = 64
)

// ErrInvalid is wrapped by every validation and parse error. Errors name
// the field, never its value.
var ErrInvalid = errors.New("invalid audit event")

// Actor is who acted: the authenticated subject and key id when known, and
// the client address.
type Actor struct {
	// Subject is the Keycloak subject (sub) or the service's own name.
	Subject string `json:"subject"`
	// KeyID is the public id (kid) of the API key used, never the key.
	KeyID string `json:"key_id"`
	// IP is the client address.
	IP string `json:"ip"`
}

// Event is one audit record. Every field is an identifier or an
// enumeration; see Validate.
type Event struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Actor     Actor     `json:"actor"`
	Action    Action    `json:"action"`
	// Target is what was acted on: a key id, a guest subject, an approval id,
	// a plugin instance or route name.
	Target   string   `json:"target"`
	Outcome  Outcome  `json:"outcome"`
	Reason   string   `json:"reason"`
	Severity Severity `json:"severity"`
	// Source is the emitting component (llm-api, keycloak-jwt, …).
	Source string `json:"source"`
	// Sanitized names the fields Sanitize replaced because their value was
	// unacceptable (none for most events); the event is kept, flagged.
	Sanitized Sanitized `json:"sanitized"`
}

// Valid reports whether a is a known action.
func (a Action) Valid() bool {
	for _, v := range Actions {
		if a == v {
			return true
		}
	}
	return false
}

// Valid reports whether o is a known outcome.
func (o Outcome) Valid() bool {
	for _, v := range Outcomes {
		if o == v {
			return true
		}
	}
	return false
}

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool {
	for _, v := range Severities {
		if s == v {
			return true
		}
	}
	return false
}

// charset classes
const (
	classID     = iota // A-Z a-z 0-9 . _ - : @ /
	classReason        // a-z 0-9 _ .
	classKeyID         // A-Z a-z 0-9 _ -
)

func allowed(c byte, class int) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	case class == classReason:
		return c == '_' || c == '.'
	case c >= 'A' && c <= 'Z':
		return true
	case class == classKeyID:
		return c == '_' || c == '-'
	default: // classID
		return c == '.' || c == '_' || c == '-' || c == ':' || c == '@' || c == '/'
	}
}

// fieldProblem says what is wrong with an identifier field ("" when it is
// acceptable). It does not allocate.
func fieldProblem(v string, max, class int, required bool) string {
	if v == "" {
		if required {
			return "is required"
		}
		return ""
	}
	if len(v) > max {
		return "is too long"
	}
	for i := 0; i < len(v); i++ {
		if !allowed(v[i], class) {
			return "has a character outside its charset"
		}
	}
	// the one credential-shape rule (pkg/requestid): values shaped like an
	// API key or a JWT are refused, so a caller that passes the wrong
	// variable cannot store a secret
	if requestid.LooksLikeCredential(v) {
		return "looks like a credential"
	}
	return ""
}

func checkField(name, v string, max, class int, required bool) error {
	if p := fieldProblem(v, max, class, required); p != "" {
		if p == "is too long" {
			return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, name, max)
		}
		return fmt.Errorf("%w: %s %s", ErrInvalid, name, p)
	}
	return nil
}

// requestIDProblem applies the one request id rule (requestid.Valid) to an
// event's optional request id.
func requestIDProblem(v string) string {
	if v == "" || requestid.Valid(v) {
		return ""
	}
	if requestid.LooksLikeCredential(v) {
		return "looks like a credential"
	}
	return "is not an acceptable request id"
}

// validTime: after 2000 and not years ahead, as UTC (the stream's form).
func validTime(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	y := t.UTC().Year()
	return y >= 2000 && y <= 9999
}

// canonicalIP reports whether s is an IP address in canonical form without
// a zone.
func canonicalIP(s string) bool {
	a, err := netip.ParseAddr(s)
	var buf [64]byte
	return err == nil && a.Zone() == "" && string(a.AppendTo(buf[:0])) == s
}

// Validate checks every field: known enumerations, identifiers within their
// charset and bounds, an acceptable request id (requestid.Valid) or none, a
// canonical IP, a time after 2000 and not years ahead, known Sanitized
// flags. It has no side effects. The emitter does not drop an event that
// fails it: it writes Sanitize's result.
func (e Event) Validate() error {
	if !validTime(e.Time) {
		return fmt.Errorf("%w: time is out of range", ErrInvalid)
	}
	if !e.Action.Valid() {
		return fmt.Errorf("%w: unknown action", ErrInvalid)
	}
	if !e.Outcome.Valid() {
		return fmt.Errorf("%w: unknown outcome", ErrInvalid)
	}
	if !e.Severity.Valid() {
		return fmt.Errorf("%w: unknown severity", ErrInvalid)
	}
	checks := [...]struct {
		name     string
		v        string
		max      int
		class    int
		required bool
	}{
		{"actor.subject", e.Actor.Subject, MaxSubject, classID, false},
		{"actor.key_id", e.Actor.KeyID, MaxKeyID, classKeyID, false},
		{"target", e.Target, MaxTarget, classID, false},
		{"reason", e.Reason, MaxReason, classReason, false},
		{"source", e.Source, MaxSource, classID, true},
	}
	if p := requestIDProblem(e.RequestID); p != "" {
		return fmt.Errorf("%w: request_id %s", ErrInvalid, p)
	}
	for _, c := range checks {
		if err := checkField(c.name, c.v, c.max, c.class, c.required); err != nil {
			return err
		}
	}
	if e.Actor.IP != "" && !canonicalIP(e.Actor.IP) {
		return fmt.Errorf("%w: actor.ip is not a canonical IP address", ErrInvalid)
	}
	if e.Sanitized&^sanitizedAll != 0 {
		return fmt.Errorf("%w: sanitized has unknown flags", ErrInvalid)
	}
	return nil
}

// CleanIP returns the canonical form of a client address, or "" when it
// is not an IP address (so an event never fails on a bad address).
func CleanIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	return a.WithZone("").String()
}

// CleanTarget returns s when it is a valid Target (or Subject: same
// rules), else "": callers building events from request data (a path, a
// subject from a token) keep the rest of the event when one field would
// not validate.
func CleanTarget(s string) string {
	if checkField("target", s, MaxTarget, classID, false) != nil {
		return ""
	}
	return s
}

// CleanKeyID returns s when it is a valid Actor.KeyID, else "".
func CleanKeyID(s string) string {
	if checkField("key_id", s, MaxKeyID, classKeyID, false) != nil {
		return ""
	}
	return s
}

// Stream field names. Version 1 is the twelve fields below; version 2 is
// version 1 plus fieldSanitized, written only for an event with Sanitized
// flags, so a consumer that reads only version 1 still reads every
// unflagged event (consumers are upgraded first; Parse reads both).
const (
	fieldVersion   = "v"
	fieldTime      = "t"
	fieldRequestID = "rid"
	fieldSubject   = "sub"
	fieldKeyID     = "kid"
	fieldIP        = "ip"
	fieldAction    = "act"
	fieldTarget    = "tgt"
	fieldOutcome   = "out"
	fieldReason    = "rsn"
	fieldSeverity  = "sev"
	fieldSource    = "src"
	fieldSanitized = "san"
	version1       = "1"
	version2       = "2"
)

// Fields encodes e as the flat field/value list of an XADD: version 1, or
// version 2 with the san field (Sanitized.String) when e is flagged.
func (e Event) Fields() []string {
	v := version1
	if e.Sanitized != 0 {
		v = version2
	}
	f := []string{
		fieldVersion, v,
		fieldTime, e.Time.UTC().Format(time.RFC3339Nano),
		fieldRequestID, e.RequestID,
		fieldSubject, e.Actor.Subject,
		fieldKeyID, e.Actor.KeyID,
		fieldIP, e.Actor.IP,
		fieldAction, string(e.Action),
		fieldTarget, e.Target,
		fieldOutcome, string(e.Outcome),
		fieldReason, e.Reason,
		fieldSeverity, string(e.Severity),
		fieldSource, e.Source,
	}
	if e.Sanitized != 0 {
		f = append(f, fieldSanitized, e.Sanitized.String())
	}
	return f
}

// Field counts of the encoding versions; maxFields bounds what Parse looks
// at.
const (
	fieldsV1  = 12
	fieldsV2  = 13
	maxFields = fieldsV2
)

// Parse decodes the fields of one stream entry (as go-redis returns them)
// into a validated Event: version 1 (twelve fields) or version 2 (those and
// san, a non-empty list of Sanitized names in canonical order). Unknown,
// missing or non-string fields, another encoding version and every
// Validate failure are refused with ErrInvalid: Parse does not sanitize —
// the emitters do before writing, and an entry that needs it was not
// written by one.
func Parse(values map[string]any) (Event, error) {
	var e Event
	if len(values) != fieldsV1 && len(values) != fieldsV2 {
		return e, fmt.Errorf("%w: %d fields, want %d or %d", ErrInvalid, len(values), fieldsV1, fieldsV2)
	}
	get := func(name string) (string, error) {
		raw, ok := values[name]
		if !ok {
			return "", fmt.Errorf("%w: field %s is missing", ErrInvalid, name)
		}
		s, ok := raw.(string)
		if !ok {
			return "", fmt.Errorf("%w: field %s is not a string", ErrInvalid, name)
		}
		return s, nil
	}
	var errs []error
	str := func(name string) string {
		s, err := get(name)
		if err != nil {
			errs = append(errs, err)
		}
		return s
	}
	v := str(fieldVersion)
	if len(errs) == 0 && v != version1 && v != version2 {
		return e, fmt.Errorf("%w: unknown encoding version", ErrInvalid)
	}
	want := fieldsV1
	if v == version2 {
		want = fieldsV2
	}
	if len(errs) == 0 && len(values) != want {
		return e, fmt.Errorf("%w: %d fields, version %s has %d", ErrInvalid, len(values), v, want)
	}
	if v == version2 {
		san, err := ParseSanitized(str(fieldSanitized))
		if err != nil || san == 0 {
			errs = append(errs, fmt.Errorf("%w: field %s is not a list of sanitized fields", ErrInvalid, fieldSanitized))
		}
		e.Sanitized = san
	}
	ts := str(fieldTime)
	e.RequestID = str(fieldRequestID)
	e.Actor.Subject = str(fieldSubject)
	e.Actor.KeyID = str(fieldKeyID)
	e.Actor.IP = str(fieldIP)
	e.Action = Action(str(fieldAction))
	e.Target = str(fieldTarget)
	e.Outcome = Outcome(str(fieldOutcome))
	e.Reason = str(fieldReason)
	e.Severity = Severity(str(fieldSeverity))
	e.Source = str(fieldSource)
	if len(errs) > 0 {
		return Event{}, errs[0]
	}
	if len(ts) > 40 {
		return Event{}, fmt.Errorf("%w: time is not RFC 3339", ErrInvalid)
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return Event{}, fmt.Errorf("%w: time is not RFC 3339", ErrInvalid)
	}
	e.Time = t.UTC()
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// Sanitized is the set of an event's fields that Sanitize replaced because
// their value was unacceptable. Its names (Names) are stable: they are the
// event's "sanitized" list in JSON and the log, the stream's san field, and
// llm-api's sanitized column.
type Sanitized uint16

// The fields Sanitize can replace, in canonical order.
const (
	// SanitizedTime: a time out of range became the emitter's now.
	SanitizedTime Sanitized = 1 << iota
	// SanitizedRequestID: a request id requestid.Valid refuses (malformed,
	// credential-shaped) became a generated one.
	SanitizedRequestID
	// SanitizedSubject, SanitizedKeyID, SanitizedTarget, SanitizedReason:
	// emptied.
	SanitizedSubject
	SanitizedKeyID
	// SanitizedIP: canonicalized (CleanIP) when it is an address, else
	// emptied.
	SanitizedIP
	SanitizedTarget
	SanitizedReason
	// SanitizedSeverity: an unknown severity became warning.
	SanitizedSeverity
	// SanitizedSource: a missing or unacceptable source became "unknown".
	SanitizedSource

	sanitizedAll = SanitizedSource<<1 - 1
)

// UnknownSource replaces a missing or unacceptable Source.
const UnknownSource = "unknown"

var sanitizedNames = [...]string{"time", "request_id", "actor.subject", "actor.key_id", "actor.ip", "target", "reason",
	"severity", "source"}

// Names lists the flagged fields in canonical order (nil when none).
func (s Sanitized) Names() []string {
	var out []string
	for i, n := range sanitizedNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String is Names joined with commas (the stream's san field).
func (s Sanitized) String() string { return strings.Join(s.Names(), ",") }

// ParseSanitized decodes String's form: known names, canonical order, each
// once. "" is no flag.
func ParseSanitized(list string) (Sanitized, error) {
	if list == "" {
		return 0, nil
	}
	var s Sanitized
	next := 0
	for name := range strings.SplitSeq(list, ",") {
		i := sanitizedIndex(name)
		if i < next {
			return 0, fmt.Errorf("%w: sanitized is not a list of known field names in order", ErrInvalid)
		}
		s |= 1 << i
		next = i + 1
	}
	return s, nil
}

func sanitizedIndex(name string) int {
	for i, n := range sanitizedNames {
		if n == name {
			return i
		}
	}
	return -1
}

// MarshalJSON is the list of names ([] when none).
func (s Sanitized) MarshalJSON() ([]byte, error) {
	names := s.Names()
	if names == nil {
		names = []string{}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads a list of names in any order; an unknown name is
// refused with ErrInvalid.
func (s *Sanitized) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("%w: sanitized is not a list of strings", ErrInvalid)
	}
	var out Sanitized
	for _, n := range names {
		i := sanitizedIndex(n)
		if i < 0 {
			return fmt.Errorf("%w: sanitized names an unknown field", ErrInvalid)
		}
		out |= 1 << i
	}
	*s = out
	return nil
}

// Sanitize returns e with every unacceptable field replaced and named in
// Sanitized, so the event is kept rather than lost for one bad value: a
// time out of range becomes now; a request id requestid.Valid refuses (a
// malformed or credential-shaped one) a generated id; a subject, key id,
// target or reason outside its rule (charset, length, credential shape) is
// emptied; an address is canonicalized or emptied; an unknown severity
// becomes warning; a missing or unacceptable source "unknown". A valid
// event is returned unchanged. Only an event without its identity — a
// known action and outcome — is refused (ErrInvalid, naming the field,
// never a value): there is nothing to record. The result always passes
// Validate.
func (e Event) Sanitize(now time.Time) (Event, error) {
	if !e.Action.Valid() {
		return Event{}, fmt.Errorf("%w: unknown action", ErrInvalid)
	}
	if !e.Outcome.Valid() {
		return Event{}, fmt.Errorf("%w: unknown outcome", ErrInvalid)
	}
	e.Sanitized &= sanitizedAll
	if !validTime(e.Time) {
		if !validTime(now) {
			now = time.Now()
		}
		e.Time, e.Sanitized = now.UTC(), e.Sanitized|SanitizedTime
	}
	if requestIDProblem(e.RequestID) != "" {
		e.RequestID, e.Sanitized = requestid.New(), e.Sanitized|SanitizedRequestID
	}
	for _, f := range [...]struct {
		v          *string
		max, class int
		required   bool
		repl       string
		flag       Sanitized
	}{
		{&e.Actor.Subject, MaxSubject, classID, false, "", SanitizedSubject},
		{&e.Actor.KeyID, MaxKeyID, classKeyID, false, "", SanitizedKeyID},
		{&e.Target, MaxTarget, classID, false, "", SanitizedTarget},
		{&e.Reason, MaxReason, classReason, false, "", SanitizedReason},
		{&e.Source, MaxSource, classID, true, UnknownSource, SanitizedSource},
	} {
		if fieldProblem(*f.v, f.max, f.class, f.required) != "" {
			*f.v, e.Sanitized = f.repl, e.Sanitized|f.flag
		}
	}
	if e.Actor.IP != "" && !canonicalIP(e.Actor.IP) {
		ip := CleanIP(e.Actor.IP)
		if !canonicalIP(ip) {
			ip = ""
		}
		e.Actor.IP, e.Sanitized = ip, e.Sanitized|SanitizedIP
	}
	if !e.Severity.Valid() {
		e.Severity, e.Sanitized = SeverityWarning, e.Sanitized|SanitizedSeverity
	}
	return e, nil
}

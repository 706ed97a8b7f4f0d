package audit

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// badOptionalFields are the attack run's audit-suppression values and their
// relatives: each makes one optional field unacceptable. The event must
// still be written, that field cleaned (or for request_id replaced by a
// generated id) and named in Sanitized.
var badOptionalFields = []struct {
	name  string
	mod   func(*Event)
	get   func(Event) string
	flag  Sanitized
	field string // the stable name in Sanitized.Names and the stream
	want  string // the cleaned value; "generated" for a new request id
}{
	{"api key as request id", func(e *Event) { e.RequestID = "sk_rt1234" }, func(e Event) string { return e.RequestID },
		SanitizedRequestID, "request_id", "generated"},
	{"jwt as request id", func(e *Event) { e.RequestID = "eyJrt.ab12.x" }, func(e Event) string { return e.RequestID },
		SanitizedRequestID, "request_id", "generated"},
	{"request id with a colon", func(e *Event) { e.RequestID = "a:b" }, func(e Event) string { return e.RequestID },
		SanitizedRequestID, "request_id", "generated"},
	{"request id too long", func(e *Event) { e.RequestID = strings.Repeat("r", 129) }, func(e Event) string { return e.RequestID },
		SanitizedRequestID, "request_id", "generated"},
	{"jwt as subject", func(e *Event) { e.Actor.Subject = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln" },
		func(e Event) string { return e.Actor.Subject }, SanitizedSubject, "actor.subject", ""},
	{"subject with newline", func(e *Event) { e.Actor.Subject = "alice\nadmin" },
		func(e Event) string { return e.Actor.Subject }, SanitizedSubject, "actor.subject", ""},
	{"api key as key id", func(e *Event) { e.Actor.KeyID = "sk_live_Ab3dE5g7_secretsecret" },
		func(e Event) string { return e.Actor.KeyID }, SanitizedKeyID, "actor.key_id", ""},
	{"key id with colon", func(e *Event) { e.Actor.KeyID = "a:b" }, func(e Event) string { return e.Actor.KeyID },
		SanitizedKeyID, "actor.key_id", ""},
	{"api key as target", func(e *Event) { e.Target = "sk_live_Ab3dE5g7_secretsecret" }, func(e Event) string { return e.Target },
		SanitizedTarget, "target", ""},
	{"api key in target path", func(e *Event) { e.Target = "apikey:sk_rt1234" }, func(e Event) string { return e.Target },
		SanitizedTarget, "target", ""},
	{"jwt as target", func(e *Event) { e.Target = "eyJrt.ab12.x" }, func(e Event) string { return e.Target },
		SanitizedTarget, "target", ""},
	{"reason upper case", func(e *Event) { e.Reason = "Token_Expired" }, func(e Event) string { return e.Reason },
		SanitizedReason, "reason", ""},
	{"ip with zone", func(e *Event) { e.Actor.IP = "fe80::1%eth0" }, func(e Event) string { return e.Actor.IP },
		SanitizedIP, "actor.ip", "fe80::1"},
	{"ip not an ip", func(e *Event) { e.Actor.IP = "localhost" }, func(e Event) string { return e.Actor.IP },
		SanitizedIP, "actor.ip", ""},
	{"unknown severity", func(e *Event) { e.Severity = "debug" }, func(e Event) string { return string(e.Severity) },
		SanitizedSeverity, "severity", "warning"},
	{"missing source", func(e *Event) { e.Source = "" }, func(e Event) string { return e.Source },
		SanitizedSource, "source", "unknown"},
	{"jwt as source", func(e *Event) { e.Source = "eyJrt.ab12.x" }, func(e Event) string { return e.Source },
		SanitizedSource, "source", "unknown"},
	{"time before 2000", func(e *Event) { e.Time = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(e Event) string { return e.Time.Format(time.RFC3339) }, SanitizedTime, "time", "2026-12-01T10:00:00Z"},
}

var sanitizeNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestSanitizeCleansABadOptionalFieldAndFlagsIt(t *testing.T) {
	for _, c := range badOptionalFields {
		t.Run(c.name, func(t *testing.T) {
			ev := validEvent()
			c.mod(&ev)
			bad := c.get(ev)
			got, err := ev.Sanitize(sanitizeNow)
			if err != nil {
				t.Fatalf("event refused: %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("sanitized event does not validate: %v", err)
			}
			checkCleaned(t, got, c.get(got), bad, c.want)
			if got.Sanitized != c.flag || !slices.Equal(got.Sanitized.Names(), []string{c.field}) {
				t.Fatalf("sanitized = %v, want [%s]", got.Sanitized.Names(), c.field)
			}
			// everything else is kept as it was
			restore := got
			c.mod(&restore)
			restore.Sanitized = 0
			if restore != ev {
				t.Fatalf("other fields changed:\n got  %+v\n from %+v", got, ev)
			}
		})
	}
}

func checkCleaned(t *testing.T, ev Event, v, bad, want string) {
	t.Helper()
	switch want {
	case "generated":
		if v == bad || !requestid.Valid(v) || len(v) != 32 {
			t.Fatalf("request id %q, want a generated one", v)
		}
	default:
		if v != want {
			t.Fatalf("cleaned value %q, want %q", v, want)
		}
	}
	if bad != "" && bad != want {
		for _, f := range ev.Fields() {
			if strings.Contains(f, bad) {
				t.Fatalf("the refused value is still in the event's stream fields: %q", f)
			}
		}
	}
}

func TestSanitizeKeepsAValidEventAsIsAndCleansEveryBadFieldAtOnce(t *testing.T) {
	ev := validEvent()
	if got, err := ev.Sanitize(sanitizeNow); err != nil || got != ev {
		t.Fatalf("a valid event changed: %+v, %v", got, err)
	}
	var want Sanitized
	for _, c := range badOptionalFields {
		c.mod(&ev)
		want |= c.flag
	}
	got, err := ev.Sanitize(sanitizeNow)
	if err != nil || got.Validate() != nil || got.Sanitized != want {
		t.Fatalf("sanitized %v (%v), want %v", got.Sanitized.Names(), err, want.Names())
	}
	if got.Action != ev.Action || got.Outcome != ev.Outcome {
		t.Fatal("the event's identity changed")
	}
}

// Only an event without its identity (a known action and outcome) is
// refused: there is nothing to record.
func TestSanitizeRefusesOnlyAMissingActionOrOutcome(t *testing.T) {
	for name, mod := range map[string]func(*Event){
		"unknown action":  func(e *Event) { e.Action = "apikey.stolen" },
		"no action":       func(e *Event) { e.Action = "" },
		"unknown outcome": func(e *Event) { e.Outcome = "maybe" },
		"no outcome":      func(e *Event) { e.Outcome = "" },
	} {
		ev := validEvent()
		mod(&ev)
		ev.Target = "sk_live_Ab3dE5g7_secretsecret"
		_, err := ev.Sanitize(sanitizeNow)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: err = %v, want ErrInvalid without the values", name, err)
		}
	}
}

// The attack run's finding: an event with a credential-shaped optional
// field reached the emitter and was dropped as invalid. It must be written,
// cleaned and flagged, and the value must reach neither the writer nor the
// log.
func TestEmitterKeepsEventsWithABadOptionalField(t *testing.T) {
	for _, c := range badOptionalFields {
		t.Run(c.name, func(t *testing.T) {
			w := &fakeWriter{}
			e, m, logs := newTestEmitter(t, w, 4)
			ev := validEvent()
			c.mod(&ev)
			bad := c.get(ev)
			e.Emit(ev)
			flush(t, e)
			got := w.events()
			if len(got) != 1 {
				t.Fatalf("%d events written, want 1 (dropped invalid: %v)", len(got),
					testutil.ToFloat64(m.Dropped.WithLabelValues(DropInvalid)))
			}
			want := c.want
			if c.flag == SanitizedTime { // the emitter's clock: now
				if d := time.Since(got[0].Time); d < 0 || d > time.Minute {
					t.Fatalf("time %v, want now", got[0].Time)
				}
				want = c.get(got[0])
			}
			checkCleaned(t, got[0], c.get(got[0]), bad, want)
			if !slices.Contains(got[0].Sanitized.Names(), c.field) {
				t.Fatalf("event not flagged: %v", got[0].Sanitized.Names())
			}
			if d := testutil.ToFloat64(m.Dropped.WithLabelValues(DropInvalid)); d != 0 {
				t.Fatalf("dropped invalid = %v", d)
			}
			if s := testutil.ToFloat64(m.Sanitized); s != 1 {
				t.Fatalf("sanitized counter = %v, want 1", s)
			}
			if len(bad) > 3 && c.want != bad && strings.Contains(logs.String(), bad) {
				t.Fatalf("the refused value reached the log: %s", logs.String())
			}
		})
	}
}

func TestEmitterStillRefusesAnEventWithoutActionOrOutcome(t *testing.T) {
	w := &fakeWriter{}
	e, m, logs := newTestEmitter(t, w, 4)
	ev := validEvent()
	ev.Outcome = "maybe"
	ev.Target = "sk_live_Ab3dE5g7_TOPSECRETTOPSECRET"
	e.Emit(ev)
	flush(t, e)
	if len(w.events()) != 0 || testutil.ToFloat64(m.Dropped.WithLabelValues(DropInvalid)) != 1 {
		t.Fatalf("written %d, dropped %v", len(w.events()), testutil.ToFloat64(m.Dropped.WithLabelValues(DropInvalid)))
	}
	out := logs.String()
	if !strings.Contains(out, `"audit_dropped":"invalid"`) || !strings.Contains(out, `"outcome":"invalid"`) || strings.Contains(out, "TOPSECRET") {
		t.Fatalf("log:\n%s", out)
	}
}

// An event dropped before the writer saw it (full queue) is logged
// sanitized: its fields and its flag, never the refused value.
func TestDroppedEventsAreLoggedSanitized(t *testing.T) {
	w := &fakeWriter{block: make(chan struct{})}
	e, _, logs := newTestEmitter(t, w, 1)
	ev := validEvent()
	ev.RequestID = "eyJrt.ab12.x"
	for range 20 {
		e.Emit(ev)
	}
	close(w.block)
	flush(t, e)
	out := logs.String()
	if strings.Contains(out, "eyJrt") || !strings.Contains(out, `"audit_dropped":"queue_full"`) ||
		!strings.Contains(out, `"sanitized":["request_id"]`) || !strings.Contains(out, `"target":"apikey:Ab3dE5g7"`) {
		t.Fatalf("log:\n%s", out)
	}
}

func TestFlaggedEventsRoundTripAsVersion2AndUnflaggedAsVersion1(t *testing.T) {
	ev := validEvent()
	f := ev.Fields()
	if len(f) != 24 || f[0] != "v" || f[1] != "1" {
		t.Fatalf("an unflagged event is not encoded as version 1: %q", f)
	}
	ev.RequestID = "sk_rt1234"
	ev.Target = "eyJrt.ab12.x"
	ev, err := ev.Sanitize(sanitizeNow)
	if err != nil {
		t.Fatal(err)
	}
	m := fieldsMap(ev.Fields())
	if len(m) != 13 || m["v"] != "2" || m["san"] != "request_id,target" {
		t.Fatalf("flagged entry %v", m)
	}
	got, err := Parse(m)
	if err != nil || got != ev {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, ev)
	}
	for name, mod := range map[string]func(map[string]any){
		"v2 without san":          func(m map[string]any) { delete(m, "san") },
		"v2 with empty san":       func(m map[string]any) { m["san"] = "" },
		"unknown name":            func(m map[string]any) { m["san"] = "request_id,password" },
		"duplicate name":          func(m map[string]any) { m["san"] = "target,target" },
		"not in canonical order":  func(m map[string]any) { m["san"] = "target,request_id" },
		"trailing comma":          func(m map[string]any) { m["san"] = "request_id," },
		"san in v1":               func(m map[string]any) { m["v"] = "1" },
		"san is not a string":     func(m map[string]any) { m["san"] = 3 },
		"credential in san":       func(m map[string]any) { m["san"] = "sk_live_x" },
		"v2 entry with 12 fields": func(m map[string]any) { delete(m, "san"); m["x"] = "request_id" },
	} {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		mod(c)
		if _, err := Parse(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestSanitizedNamesAreStable(t *testing.T) {
	all := SanitizedTime | SanitizedRequestID | SanitizedSubject | SanitizedKeyID | SanitizedIP | SanitizedTarget |
		SanitizedReason | SanitizedSeverity | SanitizedSource
	want := []string{"time", "request_id", "actor.subject", "actor.key_id", "actor.ip", "target", "reason", "severity", "source"}
	if got := all.Names(); !slices.Equal(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
	if Sanitized(0).Names() != nil {
		t.Fatal("no flag must have no names")
	}
	b, err := (SanitizedRequestID | SanitizedTarget).MarshalJSON()
	if err != nil || string(b) != `["request_id","target"]` {
		t.Fatalf("json %s %v", b, err)
	}
	if b, _ := Sanitized(0).MarshalJSON(); string(b) != `[]` {
		t.Fatalf("json of none: %s", b)
	}
	var s Sanitized
	if err := s.UnmarshalJSON([]byte(`["target","request_id"]`)); err != nil || s != SanitizedRequestID|SanitizedTarget {
		t.Fatalf("unmarshal %v %v", s, err)
	}
	if err := s.UnmarshalJSON([]byte(`["password"]`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown name: %v", err)
	}
}

// FuzzSanitize: whatever the optional fields hold, an event with a known
// action and outcome is never dropped: Sanitize keeps it, the result
// validates, round-trips through the stream encoding, and no refused value
// survives in it. Seeded with the attack run's values.
func FuzzSanitize(f *testing.F) {
	ev := validEvent()
	f.Add(ev.RequestID, ev.Actor.Subject, ev.Actor.KeyID, ev.Actor.IP, ev.Target, ev.Reason, string(ev.Severity), ev.Source, int64(0))
	for _, s := range []string{"sk_rt1234", "eyJrt.ab12.x", "apikey:sk_live_x", "a\r\nb", "fe80::1%eth0", strings.Repeat("x", 200), "\xff"} {
		f.Add(s, s, s, s, s, s, s, s, int64(-1))
	}
	f.Fuzz(func(t *testing.T, rid, sub, kid, ip, tgt, rsn, sev, src string, unix int64) {
		for _, act := range []Action{ActionAuthDenied, ActionAPIKeyCreated, ActionApprovalDenied} {
			ev := Event{Time: time.Unix(unix, 0).UTC(), RequestID: rid, Actor: Actor{Subject: sub, KeyID: kid, IP: ip},
				Action: act, Target: tgt, Outcome: OutcomeDenied, Reason: rsn, Severity: Severity(sev), Source: src}
			got, err := ev.Sanitize(sanitizeNow)
			if err != nil {
				t.Fatalf("an event with its action and outcome was refused: %v", err)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("sanitized event invalid: %v", err)
			}
			if ev.Validate() == nil && got != ev {
				t.Fatalf("a valid event changed: %+v", got)
			}
			again, err := Parse(fieldsMap(got.Fields()))
			if err != nil || again != got {
				t.Fatalf("stream round trip: %v", err)
			}
			for _, v := range []string{got.RequestID, got.Actor.Subject, got.Actor.KeyID, got.Target, got.Source} {
				if requestid.LooksLikeCredential(v) {
					t.Fatalf("credential-shaped %q kept", v)
				}
			}
			if got.Action != act || got.Outcome != OutcomeDenied {
				t.Fatal("identity changed")
			}
		}
	})
}

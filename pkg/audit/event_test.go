package audit

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/requestid"
)

func validEvent() Event {
	return Event{
		Time:      time.Date(2026, 11, 23, 17, 0, 0, 123456789, time.UTC),
		RequestID: "req-1.a_B",
		Actor:     Actor{Subject: "2f1c0a7e-3b7d-4f6e-9d0a-1c2b3d4e5f60", KeyID: "Ab3dE5g7", IP: "203.0.113.9"},
		Action:    ActionAPIKeyCreated,
		Target:    "apikey:Ab3dE5g7",
		Outcome:   OutcomeSuccess,
		Reason:    "",
		Severity:  SeverityInfo,
		Source:    "llm-api",
	}
}

func TestValidEventPassesAndRoundTrips(t *testing.T) {
	ev := validEvent()
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(fieldsMap(ev.Fields()))
	if err != nil {
		t.Fatal(err)
	}
	if got != ev {
		t.Fatalf("round trip: got %+v, want %+v", got, ev)
	}
}

func fieldsMap(f []string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

func TestInvalidEventsAreRefusedNamingTheField(t *testing.T) {
	long := strings.Repeat("a", 200)
	cases := []struct {
		name  string
		mod   func(*Event)
		field string
	}{
		{"zero time", func(e *Event) { e.Time = time.Time{} }, "time"},
		{"unknown action", func(e *Event) { e.Action = "apikey.stolen" }, "action"},
		{"unknown outcome", func(e *Event) { e.Outcome = "maybe" }, "outcome"},
		{"unknown severity", func(e *Event) { e.Severity = "debug" }, "severity"},
		{"request id too long", func(e *Event) { e.RequestID = long }, "request_id"},
		{"request id with space", func(e *Event) { e.RequestID = "a b" }, "request_id"},
		{"subject with newline", func(e *Event) { e.Actor.Subject = "alice\nadmin" }, "actor.subject"},
		{"subject with quote", func(e *Event) { e.Actor.Subject = `a"b` }, "actor.subject"},
		{"key id with colon", func(e *Event) { e.Actor.KeyID = "a:b" }, "actor.key_id"},
		{"api key as key id", func(e *Event) { e.Actor.KeyID = "sk_live_Ab3dE5g7_secretsecret" }, "actor.key_id"},
		{"api key as target", func(e *Event) { e.Target = "sk_live_Ab3dE5g7_secretsecret" }, "target"},
		{"api key in target path", func(e *Event) { e.Target = "apikey:sk_live_x" }, "target"},
		{"jwt as subject", func(e *Event) { e.Actor.Subject = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln" }, "actor.subject"},
		{"reason upper case", func(e *Event) { e.Reason = "Token_Expired" }, "reason"},
		{"reason with space", func(e *Event) { e.Reason = "bad token" }, "reason"},
		{"missing source", func(e *Event) { e.Source = "" }, "source"},
		{"ip not an ip", func(e *Event) { e.Actor.IP = "localhost" }, "actor.ip"},
		{"ip with zone", func(e *Event) { e.Actor.IP = "fe80::1%eth0" }, "actor.ip"},
		{"ip not canonical", func(e *Event) { e.Actor.IP = "0:0:0:0:0:0:0:1" }, "actor.ip"},
		{"target with unicode", func(e *Event) { e.Target = "k\u00e9y" }, "target"},
		{"target with NUL", func(e *Event) { e.Target = "a\x00b" }, "target"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := validEvent()
			c.mod(&ev)
			err := ev.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err %q does not name %s", err, c.field)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "eyJ") {
				t.Fatalf("error echoes the value: %q", err)
			}
		})
	}
}

func TestParseRefusesTamperedEntries(t *testing.T) {
	base := fieldsMap(validEvent().Fields())
	cases := map[string]func(map[string]any){
		"unknown version":  func(m map[string]any) { m["v"] = "2" },
		"missing field":    func(m map[string]any) { delete(m, "act") },
		"extra field":      func(m map[string]any) { m["msg"] = "hello" },
		"swapped field":    func(m map[string]any) { delete(m, "rsn"); m["message"] = "x" },
		"non-string value": func(m map[string]any) { m["sub"] = 42 },
		"bad time":         func(m map[string]any) { m["t"] = "yesterday" },
		"huge time":        func(m map[string]any) { m["t"] = strings.Repeat("9", 100) },
		"bad action":       func(m map[string]any) { m["act"] = "rm -rf" },
		"secret target":    func(m map[string]any) { m["tgt"] = "sk_live_AAAAAAAA_bbbbbbbbbbbbbbbbbbbb" },
		"nil entry":        func(m map[string]any) { clear(m) },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			mod(m)
			if _, err := Parse(m); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCleanIP(t *testing.T) {
	for in, want := range map[string]string{"203.0.113.9": "203.0.113.9", "fe80::1%eth0": "fe80::1", "nope": "", "": "", "::FFFF:1.2.3.4": "::ffff:1.2.3.4"} {
		if got := CleanIP(in); got != want {
			t.Errorf("CleanIP(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse feeds arbitrary stream entries to Parse, version 1 and version
// 2 (san not empty: a 13th field): it must never panic, and whatever it
// accepts must validate and re-encode to the same event.
func FuzzParse(f *testing.F) {
	ev := validEvent()
	add := func(e Event) {
		fl := e.Fields()
		san := ""
		if len(fl) > 24 {
			san = fl[25]
		}
		f.Add(fl[1], fl[3], fl[5], fl[7], fl[9], fl[11], fl[13], fl[15], fl[17], fl[19], fl[21], fl[23], san)
	}
	add(ev)
	// the attack run's audit suppression, as the emitter writes it now
	// (sanitized, version 2) and as a tampered entry would carry it
	for _, bad := range []string{"sk_rt1234", "eyJrt.ab12.x"} {
		e := ev
		e.RequestID, e.Target = bad, bad
		add(e)
		if s, err := e.Sanitize(e.Time); err == nil {
			add(s)
		}
	}
	attacks := []func(*Event){
		func(e *Event) { e.Actor.Subject = "admin\r\nX-Injected: 1" },
		func(e *Event) { e.Target = "'; DROP TABLE audit_events; --" },
		func(e *Event) { e.Actor.KeyID = "sk_live_Ab3dE5g7_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
		func(e *Event) { e.Actor.IP = "999.1.1.1" },
		func(e *Event) { e.RequestID = "../../etc/passwd" },
		func(e *Event) { e.Reason = "<script>alert(1)</script>" },
		func(e *Event) { e.Actor.Subject = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9." },
	}
	for _, a := range attacks {
		e := ev
		a(&e)
		add(e)
	}
	f.Fuzz(func(t *testing.T, v, ts, rid, sub, kid, ip, act, tgt, out, rsn, sev, src, san string) {
		m := map[string]any{"v": v, "t": ts, "rid": rid, "sub": sub, "kid": kid, "ip": ip, "act": act,
			"tgt": tgt, "out": out, "rsn": rsn, "sev": sev, "src": src}
		if san != "" {
			m["san"] = san
		}
		got, err := Parse(m)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		again, err := Parse(fieldsMap(got.Fields()))
		if err != nil || again != got {
			t.Fatalf("re-encoding changed the event: %v", err)
		}
		if requestid.LooksLikeCredential(got.RequestID) || requestid.LooksLikeCredential(got.Target) {
			t.Fatal("accepted a credential-shaped value")
		}
	})
}

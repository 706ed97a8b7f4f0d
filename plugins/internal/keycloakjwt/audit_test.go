package keycloakjwt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// A refused token becomes an auth.denied event on the real Redis stream,
// with its reason code and the client address; the token is in no entry.
func TestDeniedRequestsAreAuditedOnTheStream(t *testing.T) {
	addr, stream, rdb := audittest.Stream(t)

	p := jwttest.New(t)
	c := newConfig(t, p, map[string]any{"audit": map[string]any{"redis": map[string]any{"addresses": []string{addr}}, "stream": stream}})
	expired := p.Token(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	garbage := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	for _, tok := range []string{expired, garbage} {
		ex := exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"Bearer " + tok}, "X-Request-ID": {"req-audit-1"}})
		c.Handle(ex)
		if ex.ExitStatus != 401 {
			t.Fatalf("status %d", ex.ExitStatus)
		}
	}
	ok := exchange.NewFake("GET", "/v1/models", map[string][]string{"Authorization": {"Bearer " + p.Token(t, "bob", nil)}})
	c.Handle(ok)
	if ok.Exited() {
		t.Fatalf("valid token refused: %d", ok.ExitStatus)
	}

	em, err := auditconf.Emitter(c.Audit, c.rt.Logger(Name))
	if err != nil || em == nil {
		t.Fatal(em, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	raw, events := audittest.Entries(t, rdb, stream)
	if len(events) != 2 {
		t.Fatalf("%d entries, want 2 (the allowed request is no event)", len(events))
	}
	for i, ev := range events {
		for _, v := range raw[i] {
			if s := v.(string); strings.Contains(s, expired) || strings.Contains(s, garbage) || strings.Contains(s, "eyJ") {
				t.Fatal("a token reached the audit stream")
			}
		}
		if ev.Action != audit.ActionAuthDenied || ev.Outcome != audit.OutcomeDenied || ev.Source != Name ||
			ev.Actor.IP != "203.0.113.7" || ev.RequestID != "req-audit-1" || ev.Target != "/v1/models" || ev.Reason == "" {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
}

func TestAuditSectionIsValidated(t *testing.T) {
	p := jwttest.New(t)
	for name, a := range map[string]map[string]any{
		"no addresses": {"stream": "x"},
		"bad stream":   {"redis": map[string]any{"addresses": []string{"127.0.0.1:6379"}}, "stream": "a b"},
		"small maxlen": {"redis": map[string]any{"addresses": []string{"127.0.0.1:6379"}}, "max_len": 5},
	} {
		t.Run(name, func(t *testing.T) {
			c := decode(t, kongJSON(t, baseConfig(p, map[string]any{"audit": a})))
			if _, err := c.Pipeline(); err == nil || !strings.Contains(err.Error(), "audit") {
				t.Fatalf("err = %v, want one naming audit", err)
			}
		})
	}
}

// A token whose holder the route's policy refuses is a 403 auth.denied event
// naming that holder (the plugin hands the refused identity over).
func TestRefusedIdentityIsTheSubjectOfThe403Event(t *testing.T) {
	addr, stream, rdb := audittest.Stream(t)
	p := jwttest.New(t)
	c := newConfig(t, p, map[string]any{"required_roles": []string{"admin"},
		"audit": map[string]any{"redis": map[string]any{"addresses": []string{addr}}, "stream": stream}})
	ex := exchange.NewFake("GET", "/v1/admin/x", map[string][]string{"Authorization": {"Bearer " + p.Token(t, "carol", nil)}})
	c.Handle(ex)
	if ex.ExitStatus != 403 {
		t.Fatalf("status %d", ex.ExitStatus)
	}
	em, err := auditconf.Emitter(c.Audit, c.rt.Logger(Name))
	if err != nil || em == nil {
		t.Fatal(em, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, events := audittest.Entries(t, rdb, stream)
	if len(events) != 1 || events[0].Actor.Subject != "carol" || events[0].Reason == "" || events[0].Severity != audit.SeverityWarning {
		t.Fatalf("events %+v", events)
	}
}

package server_test

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
)

func newAuditSink(t *testing.T) (*audit.Emitter, func() []audit.Event) {
	em, w := audittest.Emitter(t)
	var all []audit.Event
	return em, func() []audit.Event {
		all = append(all, w.Events(t, em)...)
		return append([]audit.Event(nil), all...)
	}
}

func TestGuestLoginEmitsGuestCreatedWithoutTheTokens(t *testing.T) {
	em, events := newAuditSink(t)
	e := newGuestEnv(t, guestOpts{audit: em})
	tr := e.login(t, "192.0.2.1:4000")
	got := events()
	if len(got) != 1 {
		t.Fatalf("events %+v", got)
	}
	ev := got[0]
	users := e.kc.Users()
	if ev.Action != audit.ActionGuestCreated || ev.Outcome != audit.OutcomeSuccess || ev.Actor.IP != "192.0.2.1" ||
		len(users) != 1 || ev.Target != users[0].ID || ev.RequestID == "" {
		t.Fatalf("event %+v (users %+v)", ev, users)
	}
	for _, f := range ev.Fields() {
		if strings.Contains(f, tr.AccessToken) || strings.Contains(f, tr.RefreshToken) || strings.Contains(f, users[0].Password) {
			t.Fatal("a guest credential reached the audit event")
		}
	}
	// a refused login (limit reached) is no guest.created
	for range 5 {
		e.post("/auth/guest-login", "", "192.0.2.1:4000", nil)
	}
	if n := len(events()); n != 5 {
		t.Fatalf("%d events after 4 more admitted logins, want 5", n)
	}
}

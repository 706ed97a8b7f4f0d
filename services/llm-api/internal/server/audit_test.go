package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
)

type auditSink struct {
	mu  sync.Mutex
	got []audit.Event
}

func (s *auditSink) Write(_ context.Context, evs []audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, evs...)
	return nil
}

func newAuditSink(t *testing.T) (*audit.Emitter, func() []audit.Event) {
	s := &auditSink{}
	em, err := audit.New(audit.Config{Writer: s, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Close)
	return em, func() []audit.Event {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := em.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return append([]audit.Event(nil), s.got...)
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

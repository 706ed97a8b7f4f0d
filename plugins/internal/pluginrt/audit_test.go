package pluginrt

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

type memWriter struct {
	mu  sync.Mutex
	got []audit.Event
}

func (w *memWriter) Write(_ context.Context, evs []audit.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, evs...)
	return nil
}

func (w *memWriter) events(t *testing.T, em *audit.Emitter) []audit.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

func newEmitter(t *testing.T) (*audit.Emitter, *memWriter) {
	w := &memWriter{}
	em, err := audit.New(audit.Config{Writer: w, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Close)
	return em, w
}

// handlerFunc is a provisioned handler for tests.
type handlerFunc func(exchange.Exchange)

func (f handlerFunc) Handle(ex exchange.Exchange) { f(ex) }
func (f handlerFunc) MaxHeaders() int             { return 100 }

func TestDeniedAnswersBecomeAuditEvents(t *testing.T) {
	em, w := newEmitter(t)
	cases := []struct {
		name     string
		status   int
		code     string
		ident    bool
		path     string
		action   audit.Action
		severity audit.Severity
		subject  string
		target   string
	}{
		{"401", 401, "token_expired", false, "/v1/models", audit.ActionAuthDenied, audit.SeverityInfo, "", "/v1/models"},
		{"403 with the identity", 403, "insufficient_role", true, "/v1/admin/x", audit.ActionAuthDenied, audit.SeverityWarning, "alice", "/v1/admin/x"},
		{"429 failures", 429, "too_many_auth_failures", false, "/v1/models", audit.ActionAuthRateLimited, audit.SeverityWarning, "", "/v1/models"},
		{"429 limit", 429, "rate_limited", true, "/v1/models", audit.ActionAuthRateLimited, audit.SeverityInfo, "alice", "/v1/models"},
		{"path that is not an identifier", 401, "credential_missing", false, "/v1/a b", audit.ActionAuthDenied, audit.SeverityInfo, "", ""},
		{"path carrying a key", 401, "credential_missing", false, "/v1/sk_live_AAAAAAAA_bbbbbbbb", audit.ActionAuthDenied, audit.SeverityInfo, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := exchange.NewFake("GET", c.path, nil)
			alice := &identity.Identity{Subject: "alice", AuthMethod: identity.MethodJWT}
			if c.ident && c.status == 429 { // set by an earlier plugin
				ex.SetAuthenticated(alice)
			}
			RunAudited(em, "keycloak-jwt", ex, handlerFunc(func(ex exchange.Exchange) {
				if c.status == 403 { // refused by this plugin's policy: never recorded for the request
					exchange.Forbid(ex, alice, c.code, "no", nil)
					return
				}
				exchange.Deny(ex, c.status, c.code, "no", nil)
			}))
			got := w.events(t, em)
			if len(got) != 1 {
				t.Fatalf("%d events", len(got))
			}
			e := got[0]
			if e.Action != c.action || e.Severity != c.severity || e.Reason != c.code || e.Actor.Subject != c.subject ||
				e.Target != c.target || e.Actor.IP != "203.0.113.7" || e.Source != "keycloak-jwt" {
				t.Fatalf("event %+v", e)
			}
		})
	}
	for _, status := range []int{0, 400, 431, 500, 503} {
		ex := exchange.NewFake("GET", "/", nil)
		RunAudited(em, "p", ex, handlerFunc(func(ex exchange.Exchange) {
			if status != 0 {
				exchange.Deny(ex, status, "x", "no", nil)
			}
		}))
		if got := w.events(t, em); len(got) != 0 {
			t.Fatalf("status %d audited: %+v", status, got)
		}
	}
}

func TestMisconfiguredInstanceEmitsConfigRejectedOnce(t *testing.T) {
	em, w := newEmitter(t)
	var in Instance[handlerFunc]
	nop := zerolog.Nop()
	in.Log = &nop
	aud := func() (*audit.Emitter, error) { return em, nil }
	for range 5 {
		ex := exchange.NewFake("GET", "/", nil)
		in.Handle("keycloak-apikey", ex, func() (handlerFunc, error) { return nil, errors.New("bad") }, aud)
		if ex.ExitStatus != 500 {
			t.Fatalf("status %d", ex.ExitStatus)
		}
	}
	got := w.events(t, em)
	if len(got) != 1 || got[0].Action != audit.ActionConfigRejected || got[0].Severity != audit.SeverityCritical ||
		got[0].Reason != CodeMisconfigured || got[0].Target != "keycloak-apikey" {
		t.Fatalf("events %+v", got)
	}
}

package pipeline

import (
	"testing"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// closingHost is an exchange host that, like Kong, cannot be read once the
// request has been answered: a read after Exit fails the test.
type closingHost struct {
	*exchange.Fake
	t *testing.T
}

func (h closingHost) check(what string) {
	if h.Exited() {
		h.t.Errorf("%s read after the exit", what)
	}
}

func (h closingHost) ClientIP() string { h.check("client address"); return h.Fake.ClientIP() }
func (h closingHost) Path() string     { h.check("path"); return h.Fake.Path() }
func (h closingHost) Header(name string) string {
	h.check("header " + name)
	return h.Fake.Header(name)
}
func (h closingHost) Headers() map[string][]string { h.check("headers"); return h.Fake.Headers() }
func (h closingHost) Authenticated() (*identity.Identity, bool) {
	h.check("identity")
	return h.Fake.Authenticated()
}

// Every host gets the event built the same way: as a stage ends the
// request, before the host's Exit.
func TestAuditReadsTheRequestBeforeTheExit(t *testing.T) {
	alice := &identity.Identity{Subject: "alice", AuthMethod: identity.MethodJWT}
	for _, status := range []int{401, 403, 429} {
		em, w := newEmitter(t)
		f := exchange.NewFake("GET", "/v1/models", map[string][]string{"X-Request-ID": {"req-audit-2"}})
		f.SetAuthenticated(alice)
		runAudited(em, "edgeguard", closingHost{f, t}, func(*Request) Result {
			if status == 403 {
				return Forbid(alice, "insufficient_role", "no", nil)
			}
			return Deny(status, "denied", "no", nil)
		})
		subject := "alice" // 403: the refused identity; 429: the request's
		if status == 401 {
			subject = ""
		}
		got := w.Events(t, em)
		if len(got) != 1 || got[0].Actor.IP != "203.0.113.7" || got[0].Target != "/v1/models" ||
			got[0].RequestID != "req-audit-2" || got[0].Actor.Subject != subject {
			t.Fatalf("%d: events %+v", status, got)
		}
	}
}

// freshHost fails the test when asked for a prior identity.
type freshHost struct {
	*exchange.Fake
	t *testing.T
}

func (h freshHost) Authenticated() (*identity.Identity, bool) {
	h.t.Error("a Fresh pipeline asked the host for a prior identity")
	return nil, false
}

// A Fresh pipeline (the all-in-one plugin) never asks the host for an
// identity recorded before it (under Kong: a kong.ctx.shared.get), with
// audit on or off, on a 429 too.
func TestFreshPipelineNeverReadsAPriorIdentity(t *testing.T) {
	em, _ := newEmitter(t)
	for _, e := range []*audit.Emitter{nil, em} {
		h := freshHost{exchange.NewFake("GET", "/", nil), t}
		p := New("edgeguard", Options{Fresh: true}, StageFunc(false, func(r *Request) Result {
			if _, ok := r.Identity(); ok {
				t.Error("identity out of nowhere")
			}
			return Deny(429, "rate_limited", "no", nil)
		})).WithAudit(e)
		if out := Run(h, p); out.Status != 429 {
			t.Fatalf("outcome %+v", out)
		}
	}
}

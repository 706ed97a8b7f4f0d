package pipeline

import (
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
)

func newEmitter(t *testing.T) (*audit.Emitter, *audittest.Writer) { return audittest.Emitter(t) }

// runAudited runs stage as the named plugin's pipeline on ex, with em.
func runAudited(em *audit.Emitter, plugin string, ex exchange.Exchange, stage func(*Request) Result) Outcome {
	return Run(ex, New(plugin, Options{}, StageFunc(false, stage)).WithAudit(em))
}

// plugin is a Plugin for tests: its pipeline comes from compose, provisioned
// once through in.
type plugin struct {
	name    string
	in      *Instance
	audit   *auditconf.Options
	compose func() (*Pipeline, error)
}

func (p plugin) PluginName() string           { return p.name }
func (p plugin) Pipeline() (*Pipeline, error) { return p.in.Get(p.name, p.audit, p.compose) }

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
			runAudited(em, "keycloak-jwt", ex, func(*Request) Result {
				if c.status == 403 { // refused by this plugin's policy: never recorded for the request
					return Forbid(alice, c.code, "no", nil)
				}
				return Deny(c.status, c.code, "no", nil)
			})
			got := w.Events(t, em)
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
		runAudited(em, "p", ex, func(*Request) Result {
			if status != 0 {
				return Deny(status, "x", "no", nil)
			}
			return Next
		})
		if got := w.Events(t, em); len(got) != 0 {
			t.Fatalf("status %d audited: %+v", status, got)
		}
	}
}

func TestMisconfiguredInstanceEmitsConfigRejectedOnce(t *testing.T) {
	em, w := newEmitter(t)
	var in Instance
	nop := zerolog.Nop()
	in.Log = &nop
	in.aud = em // as if built from an audit section
	in.audOnce.Do(func() {})
	p := plugin{name: "keycloak-apikey", in: &in, audit: &auditconf.Options{Redis: redisconf.Options{Addresses: []string{"127.0.0.1:1"}}},
		compose: func() (*Pipeline, error) { return nil, errors.New("bad") }}
	for range 5 {
		ex := exchange.NewFake("GET", "/", nil)
		if out := Handle(ex, p); out.Status != 500 || ex.ExitStatus != 500 || out.Code != CodeMisconfigured {
			t.Fatalf("outcome %+v, status %d", out, ex.ExitStatus)
		}
	}
	got := w.Events(t, em)
	if len(got) != 1 || got[0].Action != audit.ActionConfigRejected || got[0].Severity != audit.SeverityCritical ||
		got[0].Reason != CodeMisconfigured || got[0].Target != "keycloak-apikey" {
		t.Fatalf("events %+v", got)
	}
}

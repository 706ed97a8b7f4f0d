package pluginrt

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/Kong/go-pdk/test"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
)

// Under Kong the PDK event is closed once kong.response.exit is issued, so
// everything an audit event needs (client address, path, X-Request-ID, on a
// 429 the shared identity) must be read before the exit — and only when
// audit is on and the answer is an audited one. kongtest fails any call
// after the exit, as Kong would.
func TestAuditedDenialReadsTheRequestBeforeTheExit(t *testing.T) {
	const (
		get    = kongadapter.CallGetHeaders
		ip     = kongadapter.CallGetForwardedIP
		path   = kongadapter.CallGetPath
		method = kongadapter.CallGetMethod
		shared = kongadapter.CallSharedGet
		set    = kongadapter.CallSetHeaders
		exit   = kongadapter.CallExit
	)
	alice := &identity.Identity{Subject: "alice", AuthMethod: identity.MethodJWT}
	readHeaders := func(ex exchange.Exchange) { ex.Header("Authorization") }
	tests := []struct {
		name   string
		audit  bool
		handle func(exchange.Exchange)
		calls  []string
		event  *audit.Event // nil: no event
	}{
		{"401, audit off: calls as without audit", false, func(ex exchange.Exchange) {
			readHeaders(ex)
			exchange.Deny(ex, 401, "token_expired", "no", nil)
		}, []string{get, exit}, nil},
		{"401, audit on: address and path read before the exit", true, func(ex exchange.Exchange) {
			readHeaders(ex)
			exchange.Deny(ex, 401, "token_expired", "no", nil)
		}, []string{get, ip, path, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityInfo, Reason: "token_expired",
				Actor: audit.Actor{IP: "10.10.10.1"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"401 before any header read, audit on", true, func(ex exchange.Exchange) {
			exchange.Deny(ex, 401, "credential_missing", "no", nil)
		}, []string{ip, get, path, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityInfo, Reason: "credential_missing",
				Actor: audit.Actor{IP: "10.10.10.1"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"401 after the plugin read address and path: no call more", true, func(ex exchange.Exchange) {
			ex.Method()
			ex.Path()
			ex.ClientIP()
			readHeaders(ex)
			exchange.Deny(ex, 401, "key_unknown", "no", nil)
		}, []string{method, path, ip, get, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityInfo, Reason: "key_unknown",
				Actor: audit.Actor{IP: "10.10.10.1"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"403 names the refused identity without a call", true, func(ex exchange.Exchange) {
			readHeaders(ex)
			exchange.Forbid(ex, alice, "insufficient_role", "no", nil)
		}, []string{get, ip, path, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityWarning, Reason: "insufficient_role",
				Actor: audit.Actor{IP: "10.10.10.1", Subject: "alice"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"429 reads the shared identity before the exit", true, func(ex exchange.Exchange) {
			readHeaders(ex)
			exchange.Deny(ex, 429, "rate_limited", "no", nil)
		}, []string{get, shared, ip, path, exit},
			&audit.Event{Action: audit.ActionAuthRateLimited, Severity: audit.SeverityInfo, Reason: "rate_limited",
				Actor: audit.Actor{IP: "10.10.10.1", Subject: "alice"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"allowed, audit on: no call more", true, func(ex exchange.Exchange) {
			readHeaders(ex)
			ex.SetUpstreamHeader("X-User-ID", "alice")
		}, []string{get, set}, nil},
		{"431, audit on: not audited, no call more", true, func(ex exchange.Exchange) {
			readHeaders(ex)
			exchange.Deny(ex, 431, "too_many_headers", "no", nil)
		}, []string{get, exit}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em, w := newEmitter(t)
			var in Instance[handlerFunc]
			nop := zerolog.Nop()
			in.Log = &nop
			var aud Auditor
			if tt.audit {
				aud = func() (*audit.Emitter, error) { return em, nil }
			}
			env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models",
				Headers: http.Header{"Authorization": {"Bearer x"}, "X-Request-Id": {"req-audit-1"}}})
			b, _ := json.Marshal(alice)
			env.Ctx.Store[kongadapter.IdentityKey] = string(b) // recorded by an earlier plugin
			in.Access("keycloak-jwt", env.PDK, func() (handlerFunc, error) { return tt.handle, nil }, aud)
			if got := env.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("PDK calls\n got  %v\n want %v", got, tt.calls)
			}
			got := w.events(t, em)
			if tt.event == nil {
				if len(got) != 0 {
					t.Fatalf("events %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d events, want 1", len(got))
			}
			e := got[0]
			want := *tt.event
			want.Outcome, want.Source, want.Time = audit.OutcomeDenied, "keycloak-jwt", e.Time
			if e != want {
				t.Fatalf("event\n got  %+v\n want %+v", e, want)
			}
		})
	}
}

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

// The exchange hosts (the all-in-one plugin's Handle) build the
// event the same way: as the handler ends the request, before the host's
// Exit.
func TestRunAuditedReadsTheRequestBeforeTheExit(t *testing.T) {
	alice := &identity.Identity{Subject: "alice", AuthMethod: identity.MethodJWT}
	for _, status := range []int{401, 403, 429} {
		em, w := newEmitter(t)
		f := exchange.NewFake("GET", "/v1/models", map[string][]string{"X-Request-ID": {"req-audit-2"}})
		f.SetAuthenticated(alice)
		RunAudited(em, "edgeguard", closingHost{f, t}, handlerFunc(func(ex exchange.Exchange) {
			if status == 403 {
				exchange.Forbid(ex, alice, "insufficient_role", "no", nil)
				return
			}
			exchange.Deny(ex, status, "denied", "no", nil)
		}))
		subject := "alice" // 403: the refused identity; 429: the request's
		if status == 401 {
			subject = ""
		}
		got := w.events(t, em)
		if len(got) != 1 || got[0].Actor.IP != "203.0.113.7" || got[0].Target != "/v1/models" ||
			got[0].RequestID != "req-audit-2" || got[0].Actor.Subject != subject {
			t.Fatalf("%d: events %+v", status, got)
		}
	}
}

// freshHost is a host that takes the all-in-one chain's NoPriorIdentity
// hint (kongadapter).
type freshHost struct {
	*exchange.Fake
	told bool
}

func (h *freshHost) NoPriorIdentity() { h.told = true }

// The audit recorder wraps the host: it must not hide the hint, or the
// chain would read identities recorded before it (under Kong: a
// kong.ctx.shared.get) only when audit is on.
func TestRunAuditedPassesNoPriorIdentityOn(t *testing.T) {
	em, _ := newEmitter(t)
	for _, e := range []*audit.Emitter{nil, em} {
		h := &freshHost{Fake: exchange.NewFake("GET", "/", nil)}
		RunAudited(e, "edgeguard", h, handlerFunc(func(ex exchange.Exchange) {
			if fc, ok := ex.(interface{ NoPriorIdentity() }); ok {
				fc.NoPriorIdentity()
			}
		}))
		if !h.told {
			t.Fatalf("audit on = %v: the host was not told", e != nil)
		}
	}
}

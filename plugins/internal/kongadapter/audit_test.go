package kongadapter_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
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
	readHeaders := func(r *pipeline.Request) { r.Header("Authorization") }
	tests := []struct {
		name  string
		audit bool
		stage func(*pipeline.Request) pipeline.Result
		calls []string
		event *audit.Event // nil: no event
	}{
		{"401, audit off: calls as without audit", false, func(r *pipeline.Request) pipeline.Result {
			readHeaders(r)
			return pipeline.Deny(401, "token_expired", "no", nil)
		}, []string{get, exit}, nil},
		{"401, audit on: address and path read before the exit", true, func(r *pipeline.Request) pipeline.Result {
			readHeaders(r)
			return pipeline.Deny(401, "token_expired", "no", nil)
		}, []string{get, ip, path, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityInfo, Reason: "token_expired",
				Actor: audit.Actor{IP: "10.10.10.1"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"401 before any header read, audit on", true, func(r *pipeline.Request) pipeline.Result {
			return pipeline.Deny(401, "credential_missing", "no", nil)
		}, []string{ip, get, path, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityInfo, Reason: "credential_missing",
				Actor: audit.Actor{IP: "10.10.10.1"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"401 after the plugin read address and path: no call more", true, func(r *pipeline.Request) pipeline.Result {
			r.Method()
			r.Path()
			r.ClientIP()
			readHeaders(r)
			return pipeline.Deny(401, "key_unknown", "no", nil)
		}, []string{method, path, ip, get, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityInfo, Reason: "key_unknown",
				Actor: audit.Actor{IP: "10.10.10.1"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"403 names the refused identity without a call", true, func(r *pipeline.Request) pipeline.Result {
			readHeaders(r)
			return pipeline.Forbid(alice, "insufficient_role", "no", nil)
		}, []string{get, ip, path, exit},
			&audit.Event{Action: audit.ActionAuthDenied, Severity: audit.SeverityWarning, Reason: "insufficient_role",
				Actor: audit.Actor{IP: "10.10.10.1", Subject: "alice"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"429 reads the shared identity before the exit", true, func(r *pipeline.Request) pipeline.Result {
			readHeaders(r)
			return pipeline.Deny(429, "rate_limited", "no", nil)
		}, []string{get, shared, ip, path, exit},
			&audit.Event{Action: audit.ActionAuthRateLimited, Severity: audit.SeverityInfo, Reason: "rate_limited",
				Actor: audit.Actor{IP: "10.10.10.1", Subject: "alice"}, Target: "/v1/models", RequestID: "req-audit-1"}},
		{"allowed, audit on: no call more", true, func(r *pipeline.Request) pipeline.Result {
			readHeaders(r)
			r.SetUpstreamHeader("X-User-ID", "alice")
			return pipeline.Next
		}, []string{get, set}, nil},
		{"431, audit on: not audited, no call more", true, func(r *pipeline.Request) pipeline.Result {
			readHeaders(r)
			return pipeline.Deny(431, "too_many_headers", "no", nil)
		}, []string{get, exit}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			em, w := audittest.Emitter(t)
			p := pipeline.New("keycloak-jwt", pipeline.Options{}, pipeline.StageFunc(false, tt.stage))
			if tt.audit {
				p = p.WithAudit(em)
			}
			env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models",
				Headers: http.Header{"Authorization": {"Bearer x"}, "X-Request-Id": {"req-audit-1"}}})
			b, _ := json.Marshal(alice)
			env.Ctx.Store[kongadapter.IdentityKey] = string(b) // recorded by an earlier plugin
			kongadapter.Access(env.PDK, testPlugin{p})
			if got := env.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("PDK calls\n got  %v\n want %v", got, tt.calls)
			}
			got := w.Events(t, em)
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

// testPlugin is a pipeline.Plugin of a ready pipeline.
type testPlugin struct{ p *pipeline.Pipeline }

func (p testPlugin) PluginName() string                    { return p.p.Name() }
func (p testPlugin) Pipeline() (*pipeline.Pipeline, error) { return p.p, nil }

package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/tools"
)

// The attack run's audit suppression on mcp-tools: an admin denying an
// approval with a credential-shaped X-Request-ID got 200, and the
// approval.denied event was dropped by the audit validator. The id is now
// replaced at the door and the event recorded with the one the response
// carries.
func TestApprovalDeniedWithACredentialShapedRequestIDIsAudited(t *testing.T) {
	for _, bad := range []string{"eyJrt.ab12.x", "sk_rt1234"} {
		t.Run(bad, func(t *testing.T) {
			em, w := audittest.Emitter(t)
			ts, err := tools.New(tools.Config{})
			if err != nil {
				t.Fatal(err)
			}
			store := approval.New(approval.Config{})
			a, err := store.Request(approval.User{Subject: "alice"}, "run_python", []byte("print(1)"))
			if err != nil {
				t.Fatal(err)
			}
			h, err := Public(Config{MCP: ts.MCP, Authenticator: people, Approvals: store,
				MaxBodyBytes: 4096, Logger: zerolog.Nop(), Audit: em})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/approvals/"+a.ID, strings.NewReader(`{"decision":"deny"}`))
			req.Header.Set("Authorization", "Bearer admin")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Request-ID", bad)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("deny: %d %s", rec.Code, rec.Body)
			}
			got := w.Events(t, em)
			if len(got) != 1 {
				t.Fatalf("%d events, want one approval.denied", len(got))
			}
			rid := rec.Header().Get("X-Request-ID")
			if rid == bad || !requestid.Valid(rid) {
				t.Fatalf("response X-Request-ID %q, want a generated id", rid)
			}
			ev := got[0]
			if ev.Action != audit.ActionApprovalDenied || ev.Outcome != audit.OutcomeSuccess || ev.Target != a.ID ||
				ev.Actor.Subject != "carol" || ev.RequestID != rid || ev.Source != "mcp-tools" {
				t.Fatalf("event %+v (response request id %q)", ev, rid)
			}
			for _, f := range ev.Fields() {
				if strings.Contains(f, bad) {
					t.Fatalf("event field %q holds the credential-shaped id", f)
				}
			}
		})
	}
}

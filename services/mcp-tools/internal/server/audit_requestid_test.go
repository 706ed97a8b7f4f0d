package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/tools"
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

// The attack run's audit suppression on mcp-tools: an admin denying an
// approval with a credential-shaped X-Request-ID got 200, and the
// approval.denied event was dropped by the audit validator. The id is now
// replaced at the door and the event recorded with the one the response
// carries.
func TestApprovalDeniedWithACredentialShapedRequestIDIsAudited(t *testing.T) {
	for _, bad := range []string{"eyJrt.ab12.x", "sk_rt1234"} {
		t.Run(bad, func(t *testing.T) {
			w := &memWriter{}
			em, err := audit.New(audit.Config{Writer: w, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(em.Close)
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
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := em.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			got := append([]audit.Event(nil), w.got...)
			w.mu.Unlock()
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

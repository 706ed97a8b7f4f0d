package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// The whole llm-api on the real Redis and PostgreSQL: a key creation with
// X-Request-ID: sk_rt1234 is stored as one apikey.created event under the
// request id the answer carries (replaced at the door: no flag needed),
// and an event an emitter had to sanitize is listed by the admin endpoint
// with its "sanitized" list. The credential-shaped values are in neither.
func TestCredentialShapedRequestIDsLoseNoEventAndFlagsAreListed(t *testing.T) {
	var logs testenv.Buffer
	e := startAudited(t, &logs)
	h := e.bearer(t)
	h["X-Request-ID"] = "sk_rt1234"
	st, b := call(t, http.MethodPost, e.public.URL+"/auth/api-keys", h, `{"name":"rid"}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	// a caller passing a bad value straight to the emitter: kept, flagged
	e.app.Audit.Emit(audit.Event{RequestID: "eyJrt.ab12.x", Actor: audit.Actor{Subject: "alice"}, Action: audit.ActionAPIKeyRevoked,
		Target: "sk_rt1234", Outcome: audit.OutcomeSuccess, Severity: audit.SeverityInfo, Source: "llm-api"})

	type view struct {
		Action    string   `json:"action"`
		RequestID string   `json:"request_id"`
		Sanitized []string `json:"sanitized"`
	}
	var events []view
	var raw []byte
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, raw = call(t, http.MethodGet, e.public.URL+"/v1/admin/audit/events?actor=alice", e.admin(t), "")
		var p struct {
			Events []view `json:"events"`
		}
		if st != 200 || json.Unmarshal(raw, &p) != nil {
			t.Fatalf("events: %d %s", st, raw)
		}
		if events = p.Events; len(events) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(events) != 2 {
		t.Fatalf("events %s, want 2", raw)
	}
	created, revoked := events[1], events[0] // newest first
	if created.Action != "apikey.created" || !requestid.Valid(created.RequestID) || created.Sanitized == nil || len(created.Sanitized) != 0 {
		t.Fatalf("created %+v", created)
	}
	if revoked.Action != "apikey.revoked" || !requestid.Valid(revoked.RequestID) ||
		strings.Join(revoked.Sanitized, ",") != "request_id,target" {
		t.Fatalf("revoked %+v", revoked)
	}
	if strings.Contains(string(raw), "sk_rt") || strings.Contains(string(raw), "eyJ") || strings.Contains(logs.String(), "sk_rt1234") {
		t.Fatal("a credential-shaped value reached an event or the log")
	}
}

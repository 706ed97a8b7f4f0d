package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// The attack run's audit suppression: a user creating a key with a
// charset-valid but credential-shaped X-Request-ID got 201 and a key, and
// the apikey.created event was dropped by the audit validator. The request
// id is now replaced at the door, and the event is recorded with the id
// the response carries; the credential-shaped value is in no event field.
func TestKeyCreationWithACredentialShapedRequestIDIsAudited(t *testing.T) {
	for _, bad := range []string{"sk_rt1234", "eyJrt.ab12.x"} {
		t.Run(bad, func(t *testing.T) {
			em, events := newAuditSink(t)
			h := newHarness(t, options{audit: em})
			r := serve(h.public, http.MethodPost, "/auth/api-keys", strings.NewReader(`{"name":"ci"}`),
				map[string]string{"Authorization": "Bearer " + h.token("alice", "user"), "X-Request-ID": bad})
			if r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			var k created
			r.json(t, &k)
			got := events()
			if len(got) != 1 {
				t.Fatalf("%d events, want one apikey.created", len(got))
			}
			rid := r.header.Get("X-Request-ID")
			if rid == bad || !requestid.Valid(rid) {
				t.Fatalf("response X-Request-ID %q, want a generated id", rid)
			}
			ev := got[0]
			if ev.Action != audit.ActionAPIKeyCreated || ev.Outcome != audit.OutcomeSuccess || ev.Actor.Subject != "alice" ||
				ev.Target != k.KID || ev.RequestID != rid {
				t.Fatalf("event %+v (response request id %q)", ev, rid)
			}
			for _, f := range ev.Fields() {
				if strings.Contains(f, bad) || strings.Contains(f, k.Key) {
					t.Fatalf("event field %q holds the credential-shaped id or the key", f)
				}
			}
			if strings.Contains(h.logs.String(), bad) {
				t.Fatal("the credential-shaped request id reached the log")
			}
		})
	}
}

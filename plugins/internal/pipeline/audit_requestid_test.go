package pipeline

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// The attack run's audit suppression at the gateway: a denial whose client
// X-Request-ID is shaped like a credential was dropped by the audit
// validator. The event is now kept, and it carries the request id the edge
// answered with — header-guard's replacement, kept by the Request (in the
// all-in-one plugin the client's header is still what Header returns) — or
// none when no header-guard ran; never the client's value.
func TestDenialWithACredentialShapedRequestIDIsAuditedWithTheEdgesID(t *testing.T) {
	for _, bad := range []string{"eyJrt.ab12.x", "sk_rt1234"} {
		for _, guarded := range []bool{false, true} {
			em, w := newEmitter(t)
			ex := exchange.NewFake("GET", "/v1/models/x", map[string][]string{"X-Request-ID": {bad}})
			runAudited(em, "edgeguard", ex, func(r *Request) Result {
				if guarded { // as header-guard does, earlier in the same pipeline
					r.SetRequestID("0123456789abcdef0123456789abcdef")
				}
				return Deny(401, "token_invalid", "no", nil)
			})
			got := w.Events(t, em)
			if len(got) != 1 {
				t.Fatalf("%s (header-guard %v): %d events, want 1", bad, guarded, len(got))
			}
			want := ""
			if guarded {
				want = "0123456789abcdef0123456789abcdef"
			}
			if got[0].RequestID != want || got[0].Target != "/v1/models/x" || got[0].Reason != "token_invalid" {
				t.Fatalf("%s (header-guard %v): event %+v", bad, guarded, got[0])
			}
			for _, f := range got[0].Fields() {
				if strings.Contains(f, bad) {
					t.Fatalf("event field %q holds the client's value", f)
				}
			}
		}
	}
}

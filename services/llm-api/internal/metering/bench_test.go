package metering

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// benchChat sends one chat completion through h (a fresh request each
// time, the caller's identity in the context, as edgehttp puts it).
func benchChat(b *testing.B, h http.Handler, sub string) {
	b.Helper()
	body := chat(`,"max_tokens":16`)
	id := &identity.Identity{Subject: sub, RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req = req.WithContext(edgehttp.WithIdentity(req.Context(), id))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
}

// BenchmarkChatMetered and BenchmarkChatUnmetered: a proxied chat
// completion (llmproxy to a loopback fake model server) with and without
// the budgets in front (real Redis on loopback: reserve before, settle
// after, the ledger a memory one). The difference is what budgets add to a
// request; compare them in the same run (BENCHMARKS.md).
func BenchmarkChatMetered(b *testing.B) {
	r := newRig(b, testenv.RedisAddr(b), nil)
	benchChat(b, r.h, "bench-"+NewID()[:12])
}

func BenchmarkChatUnmetered(b *testing.B) {
	r := newRig(b, testenv.RedisAddr(b), nil)
	benchChat(b, r.h.cfg.Upstream, "bench-"+NewID()[:12])
}

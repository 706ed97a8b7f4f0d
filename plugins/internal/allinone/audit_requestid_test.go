package allinone

import (
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
)

// The attack run's audit suppression through the all-in-one plugin on the
// Kong adapter path: a bad token with X-Request-ID: eyJrt.ab12.x was
// answered 401 and its auth.denied event dropped by the audit validator.
// Now header-guard replaces the id (upstream and on the response) and the
// denial's event, on the real Redis stream, carries exactly that replaced
// id — with the same PDK calls as a request with a clean id.
func TestCredentialShapedRequestIDDenialIsAuditedWithTheReplacedID(t *testing.T) {
	addr, stream, rdb := audittest.Stream(t)
	p := jwttest.New(t)
	key, _ := plugintest.EdgeKey(t)
	s := sections(t, p, key)
	s["jwt"]["credential_optional"] = false
	var m map[string]any
	if err := json.Unmarshal(kongJSON(t, s), &m); err != nil {
		t.Fatal(err)
	}
	var aud map[string]any
	if err := json.Unmarshal(plugintest.KongJSON(t, &auditconf.Options{},
		map[string]any{"redis": map[string]any{"addresses": []string{addr}}, "stream": stream}), &aud); err != nil {
		t.Fatal(err)
	}
	delete(aud, "__seq__")
	m["audit"] = aud
	js, _ := json.Marshal(m)
	c := decode(t, js)

	garbage := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	deny := func(rid string) (*kongtest.Env, string) {
		env := kongtest.New(t, test.Request{Method: "GET", Url: "http://gw.example/v1/models/x",
			Headers: http.Header{"Authorization": {"Bearer " + garbage}, "X-Request-Id": {rid}}})
		env.Access(kongadapter.Handler(c))
		if env.ClientRes.Status != 401 {
			t.Fatalf("%s: status %d %s", rid, env.ClientRes.Status, env.ClientRes.Body)
		}
		return env, env.ClientRes.Headers.Get("X-Request-Id")
	}
	clean, cleanID := deny("req-clean-1")
	if cleanID != "req-clean-1" {
		t.Fatalf("clean id echoed as %q", cleanID)
	}
	var replaced []string
	for _, bad := range []string{"eyJrt.ab12.x", "sk_rt1234"} {
		env, id := deny(bad)
		if id == bad || !requestid.Valid(id) || len(id) != 32 {
			t.Fatalf("%s echoed as %q, want a generated id", bad, id)
		}
		if !slices.Equal(env.Calls(), clean.Calls()) {
			t.Fatalf("PDK calls %v, want those of a clean request %v", env.Calls(), clean.Calls())
		}
		replaced = append(replaced, id)
	}

	em, err := auditconf.Emitter(c.Audit, c.rt.Logger(Name))
	if err != nil || em == nil {
		t.Fatal(em, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	raw, events := audittest.Entries(t, rdb, stream)
	if len(events) != 3 {
		t.Fatalf("%d events, want 3 (one per denial)", len(events))
	}
	for i, want := range append([]string{"req-clean-1"}, replaced...) {
		ev := events[i]
		if ev.Action != audit.ActionAuthDenied || ev.Source != Name || ev.RequestID != want || ev.Target != "/v1/models/x" {
			t.Errorf("event %d = %+v, want request id %q", i, ev, want)
		}
		for _, v := range raw[i] {
			if s := v.(string); strings.Contains(s, "eyJ") || strings.Contains(s, "sk_") {
				t.Errorf("event %d holds a credential-shaped value: %q", i, s)
			}
		}
	}
}

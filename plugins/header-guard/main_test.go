package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
)

// TestThroughGoPDKHarness runs the plugin as go-pdk's own test harness does
// (DoHttps: every phase the config implements, then an echo upstream).
func TestThroughGoPDKHarness(t *testing.T) {
	cfg := New()
	if err := json.Unmarshal([]byte(`{"max_headers":100,"max_header_bytes":32768,"strip_headers":["X-Debug"],"__seq__":1}`), cfg); err != nil {
		t.Fatal(err)
	}
	env, err := test.New(t, test.Request{
		Method: "POST",
		Url:    "https://api.example.com/v1/chat/completions",
		Headers: http.Header{
			"X-User-Id":     {"admin"},
			"X_auth_method": {"jwt"},
			"X-Debug":       {"1"},
			"Connection":    {"keep-alive, X-Forwarded-Email"},
			"X-Request-Id":  {"client-id-1"},
			"Authorization": {"Bearer eyJ.x.y"},
		},
		Body: []byte(`{"model":"m"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	env.DoHttps(cfg)

	up := env.ServiceReq.Headers
	for _, name := range []string{"X-User-Id", "X_auth_method", "X-Debug"} {
		if up.Get(name) != "" {
			t.Errorf("%s reached the upstream", name)
		}
	}
	if up.Get("Authorization") == "" {
		t.Error("Authorization must pass (keycloak-jwt reads it)")
	}
	if got := up.Get(headerguard.HeaderRequestID); got != "client-id-1" {
		t.Errorf("upstream X-Request-ID = %q", got)
	}
	if got := env.ClientRes.Headers.Get(headerguard.HeaderRequestID); got != "client-id-1" {
		t.Errorf("response X-Request-ID = %q", got)
	}
	if env.ClientRes.Status != 200 {
		t.Errorf("status = %d", env.ClientRes.Status)
	}
}

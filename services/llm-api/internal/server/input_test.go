package server_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
)

func deep(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }

// TestBadInputIs4xxNeverA500 covers the create, rotate and validate bodies
// with hostile and malformed input.
func TestBadInputIs4xxNeverA500(t *testing.T) {
	h := newHarness(t, options{})
	tok := h.token("alice", "user")
	c := h.create(tok, `{"name":"seed"}`)

	create := []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty body", "", 400, "invalid_json"},
		{"whitespace", "  \n ", 400, "invalid_json"},
		{"null", "null", 400, "invalid_json"},
		{"array", `[{"name":"x"}]`, 400, "invalid_json"},
		{"string", `"x"`, 400, "invalid_json"},
		{"not JSON", `name=x`, 400, "invalid_json"},
		{"truncated", `{"name":"x"`, 400, "invalid_json"},
		{"trailing data", `{"name":"x"} {"name":"y"}`, 400, "invalid_json"},
		{"trailing garbage", `{"name":"x"}garbage`, 400, "invalid_json"},
		{"unknown field", `{"name":"x","admin":true}`, 400, "unknown_field"},
		{"name wrong type", `{"name":123}`, 400, "invalid_field_type"},
		{"name object", `{"name":{"$ne":null}}`, 400, "invalid_field_type"},
		{"roles wrong type", `{"name":"x","roles":"admin"}`, 400, "invalid_field_type"},
		{"roles with a number", `{"name":"x","roles":["user",1]}`, 400, "invalid_field_type"},
		{"expiry string", `{"name":"x","expires_in_days":"30"}`, 400, "invalid_field_type"},
		{"expiry float", `{"name":"x","expires_in_days":1.5}`, 400, "invalid_field_type"},
		{"expiry exponent", `{"name":"x","expires_in_days":1e3}`, 400, "invalid_field_type"},
		{"expiry huge", `{"name":"x","expires_in_days":99999999999999999999999}`, 400, "invalid_field_type"},
		{"expiry zero", `{"name":"x","expires_in_days":0}`, 400, "invalid_expires_in_days"},
		{"expiry negative", `{"name":"x","expires_in_days":-5}`, 400, "invalid_expires_in_days"},
		{"expiry too long", `{"name":"x","expires_in_days":366}`, 400, "invalid_expires_in_days"},
		{"missing name", `{}`, 400, "invalid_name"},
		{"null name", `{"name":null}`, 400, "invalid_name"},
		{"blank name", `{"name":"   "}`, 400, "invalid_name"},
		{"10 kB name", `{"name":"` + strings.Repeat("n", 10<<10) + `"}`, 400, "invalid_name"},
		{"65 runes", `{"name":"` + strings.Repeat("é", 65) + `"}`, 400, "invalid_name"},
		{"control characters", `{"name":"a\u0000b"}`, 400, "invalid_name"},
		{"newline", `{"name":"a\nb"}`, 400, "invalid_name"},
		{"bidi override", `{"name":"a\u202eb"}`, 400, "invalid_name"},
		{"invalid UTF-8", "{\"name\":\"a\xff\xfeb\"}", 400, "invalid_name"},
		{"lone surrogate", `{"name":"\ud800"}`, 400, "invalid_name"},
		{"empty role", `{"name":"x","roles":[""]}`, 400, "invalid_roles"},
		{"too many roles", `{"name":"x","roles":[` + strings.Repeat(`"user",`, 40) + `"user"]}`, 400, "invalid_roles"},
		{"long role", `{"name":"x","roles":["` + strings.Repeat("r", 200) + `"]}`, 400, "invalid_roles"},
		{"role not held", `{"name":"x","roles":["admin"]}`, 403, "roles_not_held"},
		{"JSON bomb: deep nesting", `{"name":"x","roles":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, 400, "invalid_field_type"},
		{"JSON bomb: deep object", deep(2000), 400, "unknown_field"},
		{"body over the limit", `{"name":"x","roles":["` + strings.Repeat("u", 20<<10) + `"]}`, 413, "body_too_large"},
		{"duplicate key is still one object", `{"name":"dup","name":"dup"}`, 201, ""},
		{"SQL-looking name is stored literally", `{"name":"x'); DROP TABLE api_keys; --"}`, 201, ""},
		{"unicode name", `{"name":"clé 🔑 ключ"}`, 201, ""},
		{"64 runes", `{"name":"` + strings.Repeat("é", 64) + `"}`, 201, ""},
	}
	for _, tc := range create {
		t.Run("create/"+tc.name, func(t *testing.T) {
			r := h.api(http.MethodPost, "/auth/api-keys", tok, tc.body)
			if r.status != tc.status || (tc.code != "" && r.code() != tc.code) {
				t.Fatalf("got %d %s, want %d %s", r.status, truncate(r.body), tc.status, tc.code)
			}
			if r.status == 201 {
				var k created
				r.json(t, &k)
				_, _ = h.svc.Revoke(context.Background(), callerAlice(h), k.ID) // keep under the limit
			}
		})
	}
	t.Run("create/wrong content type", func(t *testing.T) {
		r := serve(h.public, http.MethodPost, "/auth/api-keys", strings.NewReader(`{"name":"x"}`),
			map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"})
		if r.status != 415 || r.code() != "unsupported_media_type" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("create/SQL-looking name reads back", func(t *testing.T) {
		r := h.api(http.MethodGet, "/auth/api-keys", tok, "")
		if !bytes.Contains(r.body, []byte(`DROP TABLE api_keys`)) {
			t.Fatal("name not stored literally")
		}
	})

	rotate := []struct{ name, body, code string }{
		{"unknown field", `{"grace":5}`, "unknown_field"},
		{"wrong type", `{"grace_seconds":"5"}`, "invalid_field_type"},
		{"negative", `{"grace_seconds":-1}`, "invalid_grace_seconds"},
		{"array", `[]`, "invalid_json"},
	}
	for _, tc := range rotate {
		t.Run("rotate/"+tc.name, func(t *testing.T) {
			r := h.api(http.MethodPost, "/auth/api-keys/"+c.ID+"/rotate", tok, tc.body)
			if r.status != 400 || r.code() != tc.code {
				t.Fatalf("got %d %s", r.status, r.body)
			}
		})
	}
	if r := h.api(http.MethodPost, "/auth/api-keys/"+c.ID+"/rotate", tok, `{"grace_seconds":1}`+strings.Repeat(" ", 2000)); r.status != 413 {
		t.Fatalf("rotate body over the limit: %d", r.status)
	}

	validate := []string{"", "null", `[]`, `{"key":1}`, `{"key":null}`, `{"key":""}`, `{"key":"x","extra":1}`,
		`{"key":"` + c.Key + `"}{}`, `{"key":"` + strings.Repeat("k", 5000) + `"}`, deep(1000), "\xff\xfe", `{"key":"sk_live_` + "\u0000" + `"}`}
	for i, body := range validate {
		r := serve(h.internal, http.MethodPost, "/internal/api-keys/validate", strings.NewReader(body),
			map[string]string{"X-Internal-Token": internalToken})
		if r.status != 400 || r.code() != "invalid_request" {
			t.Errorf("validate body %d: %d %s", i, r.status, truncate(r.body))
		}
	}
	if r := h.api(http.MethodDelete, "/auth/api-keys/"+strings.Repeat("a", 10<<10), tok, ""); r.status != 404 {
		t.Fatalf("10 kB id: %d", r.status)
	}
	if r := h.api(http.MethodDelete, "/auth/api-keys/'%20OR%201=1", tok, ""); r.status != 404 {
		t.Fatalf("SQL-looking id: %d", r.status)
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

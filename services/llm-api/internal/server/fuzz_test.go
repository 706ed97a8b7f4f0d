package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
)

var bodySeeds = []string{
	`{"name":"ci","expires_in_days":30,"roles":["user"]}`, `{"name":"x"}`, `{}`, `null`, `[]`, `{"name":1}`,
	`{"name":"a","roles":null}`, `{"grace_seconds":5}`, `{"key":"sk_live_x"}`, `{"a":{"b":[1,2,{"c":null}]}}`,
	`{"name":"\u202e"}`, "{\"name\":\"\xff\"}", `{"expires_in_days":1e400}`, deep(100), `{"name":"x"}x`,
	`{"NAME":"x"}`, `{"name":"a","Name":"b"}`, `{"name":"x","roles":["admin"],"ROLES":["user"]}`, "\xef\xbb\xbf{}",
	`{"__proto__":{"roles":["admin"]}}`, `{"name":"x",}`, `{"name":"x"}{"roles":["admin"]}`, `{"key":"sk_live_x","KEY":""}`,
	`{"name":"x" /* c */}`, `{"expires_in_days":-0}`, `{"grace_seconds":1e2}`,
	`{"name":"run:node:1a2b","expires_in_seconds":3600,"roles":["user"]}`, `{"name":"x","expires_in_seconds":0}`,
	`{"name":"x","expires_in_seconds":9223372036854775807}`, `{"name":"x","expires_in_seconds":-9223372036854775809}`,
	`{"name":"x","expires_in_days":1,"expires_in_seconds":1}`, `{"name":"x","EXPIRES_IN_SECONDS":1.0}`,
}

// The decoders never panic, and a refusal is always a 4xx with a code.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := server.DecodeCreate(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		_ = in
	})
}

func FuzzDecodeRotate(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := server.DecodeRotate(body); err != nil {
			checkDecodeErr(t, err)
		}
	})
}

func FuzzDecodeValidate(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		key, err := server.DecodeValidate(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if key == "" {
			t.Fatal("empty key accepted")
		}
	})
}

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, ": ") || !utf8.ValidString(msg) {
		t.Fatalf("bad error %q", msg)
	}
}

// FuzzCreateHandler runs bodies through the whole public router: never a
// 5xx, never a panic, and every error is JSON with a code.
func FuzzCreateHandler(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add(s)
	}
	h := newHarness(f, options{maxPerUser: 1000})
	tok := h.idp.Token(f, "alice", map[string]any{"realm_access": map[string]any{"roles": []string{"user"}}})
	f.Fuzz(func(t *testing.T, body string) {
		r := h.api(http.MethodPost, "/auth/api-keys", tok, body)
		if r.status >= 500 {
			t.Fatalf("%d for %q: %s", r.status, body, r.body)
		}
		if r.status != 201 && r.code() == "" {
			t.Fatalf("%d without a code: %s", r.status, r.body)
		}
		if r.status == 201 {
			var k created
			r.json(t, &k)
			// whatever the body said, the key expires within the bounds
			if now := h.clock(); k.ExpiresAt == nil || !k.ExpiresAt.After(now) || k.ExpiresAt.After(now.AddDate(0, 0, 365)) {
				t.Fatalf("201 with expires_at %v for %q", k.ExpiresAt, body)
			}
			_, _ = h.svc.Revoke(context.Background(), callerAlice(h), k.ID)
		}
	})
}

func callerAlice(*harness) *identity.Identity {
	return &identity.Identity{Subject: "alice", RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}
}

var sessionSeeds = []string{
	`{"refresh_token":"eyJhbGciOiJIUzUxMiJ9.eyJ0eXAiOiJSZWZyZXNoIn0.c2ln"}`, `{"refresh_token":""}`, `{"refresh_token":null}`,
	`{"refresh_token":1}`, `{"refresh_token":"a b"}`, `{"refresh_token":"\u0000"}`, `{}`, `{"x":1}`, `[]`, `null`, "",
	`{"refresh_token":"a"}{}`, deep(100),
}

// The guest-login decoder accepts nothing but no body or {}.
func FuzzDecodeGuestLogin(f *testing.F) {
	for _, s := range append(sessionSeeds, bodySeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := server.DecodeGuestLogin(body); err != nil {
			checkDecodeErr(t, err)
			return
		}
		if body != nil && strings.Trim(string(body), " \t\r\n{}") != "" {
			t.Fatalf("accepted %q", body)
		}
	})
}

// The session decoder returns only tokens of JWT characters within the
// bound, or a 4xx refusal.
func FuzzDecodeSession(f *testing.F) {
	for _, s := range append(sessionSeeds, bodySeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := server.DecodeSession(body)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		s := string(tok)
		if s == "" || len(s) > server.MaxRefreshToken || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			t.Fatalf("accepted token %q", s)
		}
	})
}

// FuzzGuestRoutes runs bodies through the three guest routes against the
// fake Keycloak: never a 5xx, every error JSON with a code.
func FuzzGuestRoutes(f *testing.F) {
	for _, s := range append(sessionSeeds, bodySeeds...) {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
		f.Add(s, uint8(2))
	}
	e := newGuestEnv(f, guestOpts{perIP: "1000000/s"})
	paths := []string{"/auth/guest-login", "/auth/refresh", "/auth/logout"}
	f.Fuzz(func(t *testing.T, body string, route uint8) {
		r := e.post(paths[int(route)%len(paths)], body, "192.0.2.1:1000", nil)
		if r.status >= 500 {
			t.Fatalf("%d for %q: %s", r.status, body, r.body)
		}
		if r.status >= 400 && r.code() == "" {
			t.Fatalf("%d without a code: %s", r.status, r.body)
		}
	})
}

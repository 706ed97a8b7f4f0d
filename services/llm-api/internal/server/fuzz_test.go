package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
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
	`{"name":"b","budget":{"tokens_per_day":5,"usd_per_month":"0.5"},"models":["small"]}`, `{"name":"b","budget":{}}`,
	`{"name":"b","budget":{"usd_per_day":1e-9}}`, `{"name":"b","budget":null,"models":null}`, `{"name":"b","models":[]}`,
	`{"name":"b","budget":{"Tokens_Per_Day":1,"x":2}}`, `{"name":"b","models":["a","a"]}`,
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

var usageSeeds = []string{
	"", "from=2030-05-01&to=2030-05-06", "from=2029-01-01&to=2030-05-06", "from=2030-05-07&to=2030-05-01",
	"from=0000-00-00", "from=9999-12-31&to=9999-12-31", "from=2030-02-30", "from=%zz", "from=2030-05-01&from=2030-05-02",
	"subject=../../etc/passwd", "subject=%2e%2e%2f", "subject=a%7Db", "subject=%00", "subject=" + strings.Repeat("a", 200),
	"subject=%E2%80%AE%D8%A7", "to=" + strings.Repeat("9", 3000), "from=2030-05-01%0D%0AX-Injected:1", "from=+2030-05-01",
	"from=2030-05-01T00:00:00Z", "limit=100000", "from[]=2030-05-01", "subject=x'%20OR%20'1'='1",
}

// FuzzUsageHandlers runs query strings through GET /v1/usage (a user) and
// GET /v1/admin/usage (an admin): never a 5xx, every refusal a 400 with a
// code, every answer within the range bound.
func FuzzUsageHandlers(f *testing.F) {
	for _, s := range usageSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	h := newHarness(f, options{budgets: true})
	user, admin := h.token("fuzz-user", "user"), h.token("fuzz-admin", "admin")
	f.Fuzz(func(t *testing.T, query string, asAdmin bool) {
		path, tok := "/v1/usage", user
		if asAdmin {
			path, tok = "/v1/admin/usage", admin
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path, req.URL.RawQuery = path, query
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.public.ServeHTTP(w, req)
		r := resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
		switch {
		case r.status >= 500:
			t.Fatalf("%d for %q: %s", r.status, query, r.body)
		case r.status != 200 && (r.status != 400 || r.code() == ""):
			t.Fatalf("%d for %q: %s", r.status, query, r.body)
		case r.status == 200:
			var a struct{ From, To string }
			r.json(t, &a)
			from, err1 := time.Parse(time.DateOnly, a.From)
			to, err2 := time.Parse(time.DateOnly, a.To)
			if err1 != nil || err2 != nil || to.Before(from) || to.Sub(from) >= 366*24*time.Hour {
				t.Fatalf("range %s..%s for %q", a.From, a.To, query)
			}
		}
	})
}

var overrideSeeds = []string{
	`{}`, `{"tokens_per_day":500,"usd_per_month":"2.5","models":["small"]}`, `{"usd_per_day":1e400}`, `{"usd_per_day":"1e3"}`,
	`{"usd_per_day":"-0"}`, `{"usd_per_day":"0.0000000001"}`, `{"tokens_per_minute":9223372036854775807}`,
	`{"tokens_per_minute":-9223372036854775809}`, `{"models":[]}`, `{"models":["\u202e"]}`, `{"models":["a}b"]}`,
	`{"models":null,"usd_per_day":null}`, `{"TOKENS_PER_DAY":1}`, `{"__proto__":{}}`, deep(100), `[]`, `null`, "",
	`{"usd_per_month":"` + strings.Repeat("9", 5000) + `"}`, "{\"models\":[\"\xff\"]}",
}

// FuzzOverrideHandler runs subjects and bodies through PUT
// /v1/admin/budgets/users/{subject}: never a 5xx, every refusal a 4xx with
// a code, and what is stored is what the answer says.
func FuzzOverrideHandler(f *testing.F) {
	subjects := []string{"alice", "..", "%2e%2e", ".x", "a%7Db", "a%2Fb", "%00", "%C3%A9", strings.Repeat("s", 129),
		"f:ldap:jan.doe@example", "../../audit/events", "x%20y", "sk_live_x"}
	for i, b := range overrideSeeds {
		f.Add(subjects[i%len(subjects)], b)
	}
	h := newHarness(f, options{budgets: true})
	admin := h.token("fuzz-admin", "admin")
	f.Fuzz(func(t *testing.T, subject, body string) {
		// subject is the path segment as sent; the server sees it decoded
		// (an escape Go's server refuses never reaches the handler)
		dec, err := url.PathUnescape(subject)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(body))
		req.URL.Path = overridePath("fz-" + dec) // a subject of the fuzz test's own in the shared Redis
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.public.ServeHTTP(w, req)
		r := resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
		s := "fz-" + dec
		if r.status >= 500 {
			t.Fatalf("%d for %q %q: %s", r.status, s, body, r.body)
		}
		if r.status == 200 && !budget.ValidSubject(s) {
			t.Fatalf("subject %q accepted", s)
		}
		if r.status != 200 && r.code() == "" {
			t.Fatalf("%d without a code: %s", r.status, r.body)
		}
		if r.status == 200 {
			var v server.OverrideView
			r.json(t, &v)
			l, err := h.budgets.Limits(context.Background(), v.Subject, "u")
			if err != nil || l == nil || !slices.Equal(l.Models, v.Models) {
				t.Fatalf("stored %+v (%v), answered %s", l, err, r.body)
			}
			_ = h.ent.RemoveOverride(context.Background(), v.Subject, "fuzz")
		}
	})
}

package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/tools"
	"github.com/rs/zerolog"
)

// fakeAuth takes the identity from a test table keyed by the bearer value:
// a stand-in for a verified credential, never a header the service trusts.
type fakeAuth map[string]*identity.Identity

func (f fakeAuth) Authenticate(r *http.Request) (*identity.Identity, error) {
	tok, st := edgehttp.BearerToken(r.Header)
	if st == edgehttp.CredAbsent {
		return nil, edgehttp.ErrNoCredential
	}
	if id, ok := f[tok]; ok {
		return id, nil
	}
	return nil, &edgehttp.Rejection{Status: http.StatusUnauthorized, Code: "token_invalid", Challenge: "invalid_token"}
}

var people = fakeAuth{
	"admin": {Subject: "carol", RealmRoles: []string{"admin"}, AuthMethod: identity.MethodJWT},
	"key":   {Subject: "dave", RealmRoles: []string{"admin"}, AuthMethod: identity.MethodAPIKey},
	"user":  {Subject: "alice", RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT},
}

func newPublic(t testing.TB, store *approval.Store) http.Handler {
	t.Helper()
	ts, err := tools.New(tools.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Public(Config{MCP: ts.MCP, Authenticator: people, Approvals: store,
		MaxBodyBytes: 4096, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(h http.Handler, method, path, cred, body string) (*httptest.ResponseRecorder, map[string]any) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec, m
}

func code(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestApprovalRoutesPolicy(t *testing.T) {
	store := approval.New(approval.Config{})
	a, _ := store.Request(approval.User{Subject: "alice"}, "run_python", []byte("x"))
	h := newPublic(t, store)
	for _, tc := range []struct {
		method, path, cred, body string
		status                   int
		code                     string
	}{
		{"GET", "/v1/approvals", "", "", 401, "credential_missing"},
		{"GET", "/v1/approvals", "bogus", "", 401, "token_invalid"},
		{"GET", "/v1/approvals", "user", "", 403, "insufficient_role"},
		{"GET", "/v1/approvals", "key", "", 403, "auth_method_not_allowed"},
		{"POST", "/v1/approvals/" + a.ID, "user", "", 403, "insufficient_role"},
		{"POST", "/v1/approvals/" + a.ID, "key", "", 403, "auth_method_not_allowed"},
		{"GET", "/v1/approvals", "admin", "", 200, ""},
		{"GET", "/v1/approvals/" + a.ID, "admin", "", 200, ""},
		{"POST", "/v1/approvals/" + a.ID, "admin", `{"decision":"deny"}`, 200, ""},
		{"POST", "/v1/approvals/" + a.ID, "admin", ``, 409, "approval_not_pending"},
		{"PUT", "/v1/approvals/" + a.ID, "admin", ``, 405, "method_not_allowed"},
		{"GET", "/v1/approvals/", "admin", ``, 404, "not_found"},
		{"GET", "/v1/approvals/x", "admin", ``, 400, "invalid_approval_id"},
		{"GET", "/v1/nothing", "admin", ``, 404, "not_found"},
	} {
		rec, m := serve(h, tc.method, tc.path, tc.cred, tc.body)
		if rec.Code != tc.status || code(m) != tc.code {
			t.Errorf("%s %s as %q: %d %v, want %d %q", tc.method, tc.path, tc.cred, rec.Code, m, tc.status, tc.code)
		}
		if rec.Header().Get("X-Request-ID") == "" {
			t.Errorf("%s %s: no X-Request-ID", tc.method, tc.path)
		}
	}
}

func TestApprovalsDisabledAnswer404(t *testing.T) {
	h := newPublic(t, nil)
	if rec, m := serve(h, "GET", "/v1/approvals", "admin", ""); rec.Code != 404 || code(m) != "approvals_disabled" {
		t.Fatalf("%d %v", rec.Code, m)
	}
}

func TestMCPEndpointChecksCredentialBeforeBody(t *testing.T) {
	h := newPublic(t, nil)
	big := strings.Repeat("x", 10000)
	if rec, m := serve(h, "POST", "/v1/mcp", "", big); rec.Code != 401 || code(m) != "credential_missing" {
		t.Fatalf("anonymous big body: %d %v", rec.Code, m)
	}
	if rec, m := serve(h, "POST", "/v1/mcp", "user", big); rec.Code != 413 || code(m) != "body_too_large" {
		t.Fatalf("big body: %d %v", rec.Code, m)
	}
	req := httptest.NewRequest("POST", "/v1/mcp", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer user")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("form body: %d", rec.Code)
	}
}

func TestDecodeDecision(t *testing.T) {
	for _, tc := range []struct {
		body    string
		approve bool
		code    string
	}{
		{"", true, ""},
		{" \n", true, ""},
		{`{}`, true, ""},
		{`{"decision":"approve"}`, true, ""},
		{`{"decision":"deny"}`, false, ""},
		{`{"decision":"DENY"}`, false, "invalid_decision"},
		{`{"decision":1}`, false, "invalid_decision"},
		{`{"decision":null}`, true, ""},
		{`{"decision":"approve","x":1}`, false, "unknown_field"},
		{`{"decision":"approve"}x`, false, "invalid_json"},
		{`[]`, false, "invalid_json"},
		{`null`, false, "invalid_json"},
		{`{`, false, "invalid_json"},
	} {
		approve, err := DecodeDecision([]byte(tc.body))
		got := ""
		var be *ginedge.BodyError
		if errors.As(err, &be) {
			got = be.Code
		} else if err != nil {
			got = err.Error()
		}
		if got != tc.code || (err == nil && approve != tc.approve) {
			t.Errorf("%q: approve %v err %v", tc.body, approve, err)
		}
	}
}

func FuzzDecodeDecision(f *testing.F) {
	for _, s := range []string{"", `{"decision":"approve"}`, `{"decision":"deny"}`, `{"decision":"x"}`, `{"a":1}`, `[]`,
		`{"Decision":"deny"}`, `{"decision":"deny","decision":"approve"}`, `{"decision":"approve","DECISION":"deny"}`,
		`{"decision":"de\u006ey"}`, `{"decision":"deny "}`, `{"decision":["deny"]}`, `{"decision":true}`, "\xef\xbb\xbf{}",
		`{"decision":"approve"} {"decision":"deny"}`, `{"__proto__":{"decision":"deny"}}`, strings.Repeat(" ", 2000) + "{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		approve, err := DecodeDecision(body)
		if err != nil {
			var be *ginedge.BodyError
			if !errors.As(err, &be) || be.Status != http.StatusBadRequest && be.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("%#v is not a refused body", err)
			}
			return
		}
		if !approve && !strings.Contains(string(body), "deny") && !strings.Contains(string(body), `\u`) {
			t.Fatalf("%q denies without saying deny", body)
		}
	})
}

func FuzzApprovalID(f *testing.F) {
	store := approval.New(approval.Config{Now: func() time.Time { return time.Unix(1e9, 0) }})
	a, _ := store.Request(approval.User{Subject: "alice"}, "run_python", []byte("x"))
	h := newPublic(f, store)
	f.Add(a.ID)
	f.Add("apr_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("../../etc")
	f.Add("%2e%2e")
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" || strings.ContainsAny(id, "/?#%") || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			return // not one printable path segment (httptest.NewRequest would panic)
		}
		for _, m := range []string{"GET", "POST"} {
			rec, body := serve(h, m, "/v1/approvals/"+id, "admin", "")
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %v", m, id, rec.Code, body)
			}
		}
	})
}

// FuzzMCPBody posts arbitrary bodies to /v1/mcp as an authenticated caller:
// bad input is a 4xx or a JSON-RPC error, never a 5xx.
func FuzzMCPBody(f *testing.F) {
	h := newPublic(f, nil)
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"time_now","arguments":{"timezone":"UTC"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"time_now","arguments":[1]}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, `{}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/mcp", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer user")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q: %d %s", body, rec.Code, rec.Body.String())
		}
	})
}

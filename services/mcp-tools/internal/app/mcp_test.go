package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var allTools = []string{"fetch_url", "run_python", "time_now"}

func TestRealMCPClientListsAndCallsToolsWithAJWT(t *testing.T) {
	h := newHarness(t)
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	if names := toolNames(t, s); !slices.Equal(names, allTools) {
		t.Fatalf("tools = %v, want %v", names, allTools)
	}
	res, m := call(t, s, "time_now", map[string]any{"timezone": "Europe/Berlin"})
	if res.IsError || m["timezone"] != "Europe/Berlin" {
		t.Fatalf("time_now = %+v %v", res, m)
	}
}

func TestRealMCPClientListsAndCallsToolsWithAnEdgeIdentity(t *testing.T) {
	h := newHarness(t)
	id := user("alice", "user")
	id.AuthMethod = identity.MethodAPIKey // tools accept API keys too
	id.APIKeyID = "AbCd1234"
	s := h.mustConnect(h.edgeClient(id))
	if names := toolNames(t, s); !slices.Equal(names, allTools) {
		t.Fatalf("tools = %v, want %v", names, allTools)
	}
	res, m := call(t, s, "time_now", nil)
	if res.IsError || m["timezone"] != "UTC" {
		t.Fatalf("time_now = %+v %v", res, m)
	}
}

func TestWithoutAValidCredentialTheMCPEndpointIs401(t *testing.T) {
	h := newHarness(t)
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	forged := roundTripper(func(r *http.Request) error {
		// what a client could send straight to the service: never an input
		r.Header.Set("X-User-ID", "admin")
		r.Header.Set("X-User-Roles", "admin,user")
		r.Header.Set("X-Auth-Method", "jwt")
		return nil
	})
	cases := []struct {
		name string
		hc   *http.Client
		code string
	}{
		{"no credential", http.DefaultClient, "credential_missing"},
		{"forged X-User headers", &http.Client{Transport: forged}, "credential_missing"},
		{"garbage JWT", h.jwtClient("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), ""},
		{"expired JWT", h.jwtClient(h.idp.Token(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), "token_expired"},
		{"API key sent to the service", h.jwtClient("sk_live_AbCd1234_notvalidatedhere"), "credential_not_accepted"},
		{"garbage edge identity", &http.Client{Transport: roundTripper(func(r *http.Request) error {
			r.Header.Set(identity.HeaderEdgeIdentity, "x.y.z")
			return nil
		})}, "edge_identity_invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, m := h.do(tc.hc, http.MethodPost, "/v1/mcp", initialize)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if tc.code != "" && errCode(m) != tc.code {
				t.Fatalf("code %q, want %q", errCode(m), tc.code)
			}
			if _, err := h.connect(tc.hc); err == nil {
				t.Fatal("the MCP client connected without a valid credential")
			}
		})
	}
}

func TestAnEdgeIdentityForAnotherPathOrServiceIsRefused(t *testing.T) {
	h := newHarness(t)
	id := user("alice", "user")
	for name, sign := range map[string]func(r *http.Request) (string, error){
		"other path": func(r *http.Request) (string, error) {
			return h.signer.Sign(&id, "mcp-tools", r.Method, "/v1/approvals", h.clock.Now())
		},
		"other method": func(r *http.Request) (string, error) {
			return h.signer.Sign(&id, "mcp-tools", "GET", r.URL.Path, h.clock.Now())
		},
		"other service": func(r *http.Request) (string, error) {
			return h.signer.Sign(&id, "llm-api", r.Method, r.URL.Path, h.clock.Now())
		},
		"expired": func(r *http.Request) (string, error) {
			return h.signer.Sign(&id, "mcp-tools", r.Method, r.URL.Path, h.clock.Now().Add(-2*time.Minute))
		},
	} {
		t.Run(name, func(t *testing.T) {
			hc := &http.Client{Transport: roundTripper(func(r *http.Request) error {
				a, err := sign(r)
				r.Header.Set(identity.HeaderEdgeIdentity, a)
				return err
			})}
			resp, m := h.do(hc, http.MethodPost, "/v1/mcp", `{}`)
			if resp.StatusCode != http.StatusUnauthorized || errCode(m) != "edge_identity_invalid" {
				t.Fatalf("status %d code %q", resp.StatusCode, errCode(m))
			}
		})
	}
}

func TestACallerWithoutTheRoleNeitherSeesNorCallsRestrictedTools(t *testing.T) {
	h := newHarness(t)
	for name, hc := range map[string]*http.Client{
		"guest JWT":           h.jwtClient(h.userToken("guest-1", "guest")),
		"no roles via edge":   h.edgeClient(user("nobody")),
		"guest flag via edge": h.edgeClient(identity.Identity{Subject: "g2", Guest: true, RealmRoles: []string{"user"}, AuthMethod: identity.MethodJWT}),
	} {
		t.Run(name, func(t *testing.T) {
			s := h.mustConnect(hc)
			if names := toolNames(t, s); !slices.Equal(names, []string{"time_now"}) {
				t.Fatalf("tools = %v, want only time_now", names)
			}
			for _, tool := range []string{"run_python", "fetch_url"} {
				_, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: tool,
					Arguments: map[string]any{"code": "print(1)", "url": "https://example.com/"}})
				want := fmt.Sprintf("unknown tool %q", tool)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: err = %v, want the unknown-tool error", tool, err)
				}
			}
			// the session survives the refusal
			if res, _ := call(t, s, "time_now", nil); res.IsError {
				t.Fatal("time_now failed after a refused call")
			}
			if n := len(h.sandbox.Runs()); n != 0 {
				t.Fatalf("sandbox ran %d times", n)
			}
			if n := len(h.app.Approvals.Pending()); n != 0 {
				t.Fatalf("%d approvals recorded for a hidden tool", n)
			}
		})
	}
}

func TestAnUnknownToolIsAnMCPErrorNotACrash(t *testing.T) {
	h := newHarness(t)
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	_, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "rm_rf", Arguments: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), `unknown tool "rm_rf"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestBadToolArgumentsAreToolErrors(t *testing.T) {
	h := newHarness(t)
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"time_now", map[string]any{"timezone": "../../etc/passwd"}},
		{"time_now", map[string]any{"timezone": 5}},
		{"time_now", map[string]any{"tz": "UTC"}},
		{"fetch_url", map[string]any{}},
		{"fetch_url", map[string]any{"url": "file:///etc/passwd"}},
		{"fetch_url", map[string]any{"url": "http://user:pw@public.test/"}},
		{"run_python", map[string]any{"code": ""}},
		{"run_python", map[string]any{"code": "print(1)", "approval_id": "apr_../../x"}},
		{"run_python", map[string]any{"code": "print(1)", "approve": true}},
	} {
		res, m := call(t, s, tc.tool, tc.args)
		if !res.IsError || m["error"] != "invalid_arguments" {
			t.Errorf("%s %v: IsError %v, %v", tc.tool, tc.args, res.IsError, m)
		}
	}
	if n := len(h.app.Approvals.Pending()); n != 0 {
		t.Fatalf("%d approvals recorded for invalid calls", n)
	}
}

func TestMCPRequestLimits(t *testing.T) {
	h := newHarness(t, withEnv("MCP_MAX_BODY_BYTES", "2048"), withEnv("SANDBOX_MAX_CODE_BYTES", "1024"))
	hc := h.jwtClient(h.userToken("alice", "user"))
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"` + strings.Repeat("x", 4096) + `"}}`
	if resp, m := h.do(hc, http.MethodPost, "/v1/mcp", big); resp.StatusCode != http.StatusRequestEntityTooLarge || errCode(m) != "body_too_large" {
		t.Fatalf("big body: %d %v", resp.StatusCode, m)
	}
	// chunked (no Content-Length) is cut while reading
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/mcp", struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked big body: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, h.srv.URL+"/v1/mcp", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "text/plain")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %d", resp.StatusCode)
	}
	for _, body := range []string{`{`, `[]`, `null`, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}`, "\x00\xff"} {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("body %q: status %d", body, resp.StatusCode)
		}
	}
	if resp, m := h.do(hc, http.MethodGet, "/v1/mcp", ""); resp.StatusCode != http.StatusMethodNotAllowed || errCode(m) != "method_not_allowed" {
		t.Fatalf("GET /v1/mcp: %d %v", resp.StatusCode, m)
	}
}

func TestASlowSandboxTimesOut(t *testing.T) {
	h := newHarness(t, withEnv("SANDBOX_FUSION_REQUIRE_APPROVAL", "false"), withEnv("SANDBOX_TIMEOUT_SECONDS", "1"))
	h.sandbox.mu.Lock()
	h.sandbox.stall = 5 * time.Second
	h.sandbox.mu.Unlock()
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	start := time.Now()
	res, m := call(t, s, "run_python", map[string]any{"code": "while True: pass"})
	if !res.IsError || (m["error"] != "timeout" && m["error"] != "sandbox_unavailable") {
		t.Fatalf("result %v", m)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestWithoutRequiredApprovalRunPythonRunsAndApprovalsAreOff(t *testing.T) {
	h := newHarness(t, withEnv("SANDBOX_FUSION_REQUIRE_APPROVAL", "false"))
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	res, m := call(t, s, "run_python", map[string]any{"code": "print(2)"})
	if res.IsError || m["status"] != "executed" {
		t.Fatalf("run_python = %v", m)
	}
	admin := h.jwtClient(h.userToken("carol", "admin"))
	if resp, m := h.do(admin, http.MethodGet, "/v1/approvals", ""); resp.StatusCode != http.StatusNotFound || errCode(m) != "approvals_disabled" {
		t.Fatalf("GET /v1/approvals: %d %v", resp.StatusCode, m)
	}
}

func TestWithoutASandboxRunPythonIsNotOffered(t *testing.T) {
	h := newHarness(t, withEnv("SANDBOX_URL", ""))
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	if names := toolNames(t, s); !slices.Equal(names, []string{"fetch_url", "time_now"}) {
		t.Fatalf("tools = %v", names)
	}
}

// TestBehindAGatewayOnTheSameHost: the gateway forwards its public Host
// header to a loopback listener (as a proxy on the same host does); authentication, not
// the Host, decides.
func TestBehindAGatewayOnTheSameHost(t *testing.T) {
	h := newHarness(t)
	hc := h.jwtClient(h.userToken("alice", "user"))
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	req.Host = "gw.example"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

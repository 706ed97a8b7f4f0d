package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

func TestApprovalFlowEndToEnd(t *testing.T) {
	h := newHarness(t)
	alice := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	const code = "print('approved code')"

	// 1. the call asks for an approval and does not run
	res, m := call(t, alice, "run_python", map[string]any{"code": code})
	id, _ := m["approval_id"].(string)
	if res.IsError || m["status"] != "approval_pending" || id == "" {
		t.Fatalf("first call = %v", m)
	}
	if n := len(h.sandbox.Runs()); n != 0 {
		t.Fatalf("sandbox ran %d times before approval", n)
	}
	// calling again before the decision stays pending (and consumes nothing)
	if _, m := call(t, alice, "run_python", map[string]any{"code": code, "approval_id": id}); m["status"] != "approval_pending" || m["approval_id"] != id {
		t.Fatalf("call while pending = %v", m)
	}

	// 2. who may decide: admins with a JWT, never the model's user
	bob := h.jwtClient(h.userToken("bob", "user"))
	if resp, m := h.do(bob, http.MethodPost, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusForbidden || errCode(m) != "insufficient_role" {
		t.Fatalf("non-admin approve: %d %v", resp.StatusCode, m)
	}
	if resp, _ := h.do(bob, http.MethodGet, "/v1/approvals", ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("non-admin list: %d", resp.StatusCode)
	}
	keyAdmin := user("dave", "admin")
	keyAdmin.AuthMethod, keyAdmin.APIKeyID = identity.MethodAPIKey, "AbCd1234"
	if resp, m := h.do(h.edgeClient(keyAdmin), http.MethodPost, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusForbidden || errCode(m) != "auth_method_not_allowed" {
		t.Fatalf("admin by API key: %d %v", resp.StatusCode, m)
	}
	if resp, m := h.do(nil, http.MethodPost, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous approve: %d %v", resp.StatusCode, m)
	}

	// 3. an admin lists, reads and approves (through the edge, JWT method)
	admin := h.edgeClient(user("carol", "admin", "user"))
	resp, m := h.do(admin, http.MethodGet, "/v1/approvals", "")
	list, _ := m["approvals"].([]any)
	if resp.StatusCode != http.StatusOK || len(list) != 1 {
		t.Fatalf("list: %d %v", resp.StatusCode, m)
	}
	first, _ := list[0].(map[string]any)
	if first["id"] != id || first["payload"] != code || first["tool"] != "run_python" || first["state"] != "pending" {
		t.Fatalf("listed %v", first)
	}
	if rb, _ := first["requested_by"].(map[string]any); rb["sub"] != "alice" {
		t.Fatalf("requested_by %v", first["requested_by"])
	}
	if resp, m := h.do(admin, http.MethodGet, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("get: %d %v", resp.StatusCode, m)
	}
	resp, m = h.do(admin, http.MethodPost, "/v1/approvals/"+id, `{"decision":"approve"}`)
	if a, _ := m["approval"].(map[string]any); resp.StatusCode != http.StatusOK || a["state"] != "approved" {
		t.Fatalf("approve: %d %v", resp.StatusCode, m)
	}
	if resp, m := h.do(admin, http.MethodPost, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusConflict || errCode(m) != "approval_not_pending" {
		t.Fatalf("second approve: %d %v", resp.StatusCode, m)
	}

	// 4. bound to the user and the exact code
	other := h.mustConnect(h.jwtClient(h.userToken("mallory", "user")))
	if res, m := call(t, other, "run_python", map[string]any{"code": code, "approval_id": id}); !res.IsError || m["error"] != "approval_not_found" {
		t.Fatalf("another user's approval: %v", m)
	}
	if res, m := call(t, alice, "run_python", map[string]any{"code": code + "\nimport os", "approval_id": id}); !res.IsError || m["error"] != "approval_code_mismatch" {
		t.Fatalf("changed code: %v", m)
	}
	if n := len(h.sandbox.Runs()); n != 0 {
		t.Fatalf("sandbox ran %d times", n)
	}

	// 5. the approved call runs once
	res, m = call(t, alice, "run_python", map[string]any{"code": code, "approval_id": id})
	if res.IsError || m["status"] != "executed" {
		t.Fatalf("approved call = %v", m)
	}
	if runs := h.sandbox.Runs(); len(runs) != 1 || runs[0] != code {
		t.Fatalf("sandbox runs %q", runs)
	}

	// 6. never twice
	if res, m := call(t, alice, "run_python", map[string]any{"code": code, "approval_id": id}); !res.IsError || m["error"] != "approval_used" {
		t.Fatalf("reuse: %v", m)
	}
	if n := len(h.sandbox.Runs()); n != 1 {
		t.Fatalf("sandbox ran %d times", n)
	}
}

func TestUnapprovedCallsExpire(t *testing.T) {
	h := newHarness(t, withEnv("APPROVAL_TTL", "10m"))
	alice := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	admin := h.jwtClient(h.userToken("carol", "admin"))
	_, m := call(t, alice, "run_python", map[string]any{"code": "print(1)"})
	id, _ := m["approval_id"].(string)

	h.clock.Add(10*time.Minute + time.Second)
	if _, m := h.do(admin, http.MethodGet, "/v1/approvals", ""); len(m["approvals"].([]any)) != 0 {
		t.Fatalf("expired approval still listed: %v", m)
	}
	if resp, m := h.do(admin, http.MethodPost, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusConflict || errCode(m) != "approval_expired" {
		t.Fatalf("approve expired: %d %v", resp.StatusCode, m)
	}
	if res, m := call(t, alice, "run_python", map[string]any{"code": "print(1)", "approval_id": id}); !res.IsError || m["error"] != "approval_expired" {
		t.Fatalf("call with expired approval: %v", m)
	}

	// an approved but unused approval expires one TTL after the decision
	_, m = call(t, alice, "run_python", map[string]any{"code": "print(2)"})
	id2, _ := m["approval_id"].(string)
	h.clock.Add(9 * time.Minute)
	if resp, m := h.do(admin, http.MethodPost, "/v1/approvals/"+id2, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d %v", resp.StatusCode, m)
	}
	h.clock.Add(10*time.Minute + time.Second)
	if res, m := call(t, alice, "run_python", map[string]any{"code": "print(2)", "approval_id": id2}); !res.IsError || m["error"] != "approval_expired" {
		t.Fatalf("call with an approval that expired after approval: %v", m)
	}
	if n := len(h.sandbox.Runs()); n != 0 {
		t.Fatalf("sandbox ran %d times", n)
	}
}

func TestDeniedAndSelfDecidedApprovals(t *testing.T) {
	h := newHarness(t)
	carolID := user("carol", "admin", "user")
	carol := h.mustConnect(h.edgeClient(carolID))
	_, m := call(t, carol, "run_python", map[string]any{"code": "print(3)"})
	id, _ := m["approval_id"].(string)
	admin := h.edgeClient(carolID)
	if resp, m := h.do(admin, http.MethodPost, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusForbidden || errCode(m) != "self_approval_forbidden" {
		t.Fatalf("self approval: %d %v", resp.StatusCode, m)
	}
	other := h.jwtClient(h.userToken("erin", "admin"))
	if resp, m := h.do(other, http.MethodPost, "/v1/approvals/"+id, `{"decision":"deny"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("deny: %d %v", resp.StatusCode, m)
	}
	if res, m := call(t, carol, "run_python", map[string]any{"code": "print(3)", "approval_id": id}); !res.IsError || m["error"] != "approval_denied" {
		t.Fatalf("denied call: %v", m)
	}
}

func TestApprovalEndpointInputs(t *testing.T) {
	h := newHarness(t)
	admin := h.jwtClient(h.userToken("carol", "admin"))
	alice := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	_, m := call(t, alice, "run_python", map[string]any{"code": "print(4)"})
	id, _ := m["approval_id"].(string)
	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/v1/approvals/nope", "", http.StatusBadRequest, "invalid_approval_id"},
		{"/v1/approvals/apr_aaaaaaaaaaaaaaaaaaaaaaaaaa", "", http.StatusNotFound, "approval_not_found"},
		{"/v1/approvals/" + id, `{"decision":"maybe"}`, http.StatusBadRequest, "invalid_decision"},
		{"/v1/approvals/" + id, `{"decision":"approve","code":"x"}`, http.StatusBadRequest, "unknown_field"},
		{"/v1/approvals/" + id, `{"decision":"approve"} {}`, http.StatusBadRequest, "invalid_json"},
		{"/v1/approvals/" + id, `[1]`, http.StatusBadRequest, "invalid_json"},
		{"/v1/approvals/" + id, `{"decision":"` + string(make([]byte, 2000)) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
	} {
		resp, m := h.do(admin, http.MethodPost, tc.path, tc.body)
		if resp.StatusCode != tc.status || errCode(m) != tc.code {
			t.Errorf("POST %s %.40q: %d %v, want %d %s", tc.path, tc.body, resp.StatusCode, m, tc.status, tc.code)
		}
	}
	if resp, m := h.do(admin, http.MethodGet, "/v1/approvals/nope", ""); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET bad id: %d %v", resp.StatusCode, m)
	}
	if resp, m := h.do(admin, http.MethodDelete, "/v1/approvals/"+id, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE: %d %v", resp.StatusCode, m)
	}
	// still pending after all the bad input
	if _, m := h.do(admin, http.MethodGet, "/v1/approvals/"+id, ""); m["approval"].(map[string]any)["state"] != "pending" {
		t.Fatalf("state changed: %v", m)
	}
}

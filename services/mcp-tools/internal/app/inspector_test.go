package app_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// TestInspectorCLIListsAndCallsTools runs the npm MCP Inspector's headless
// CLI (@modelcontextprotocol/inspector, `mcp-inspector --cli`) against the
// service, when EDGEGUARD_MCP_INSPECTOR names its executable (optional: the
// Go SDK's client covers the same ground in every run). The credential is an
// X-Edge-Identity assertion bound to POST /v1/mcp, as the edge sends it.
func TestInspectorCLIListsAndCallsTools(t *testing.T) {
	bin := os.Getenv("EDGEGUARD_MCP_INSPECTOR")
	if bin == "" {
		t.Skip("EDGEGUARD_MCP_INSPECTOR unset (path of the npm inspector's mcp-inspector executable)")
	}
	h := newHarness(t)
	id := user("alice", "user")
	inspect := func(withCredential bool, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		full := append([]string{"--cli", h.srv.URL + "/v1/mcp", "--transport", "http"}, args...)
		if withCredential {
			a, err := h.signer.Sign(&id, "mcp-tools", "POST", "/v1/mcp", h.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			full = append(full, "--header", identity.HeaderEdgeIdentity+": "+a)
		}
		cmd := exec.CommandContext(ctx, bin, full...)
		cmd.Env = append(os.Environ(), "MCP_CATALOG_PATH="+t.TempDir()+"/mcp.json", "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := inspect(true, "--method", "tools/list")
	if err != nil {
		t.Fatalf("tools/list: %v\n%s", err, out)
	}
	for _, name := range allTools {
		if !strings.Contains(out, `"`+name+`"`) {
			t.Fatalf("tools/list lacks %s:\n%s", name, out)
		}
	}
	out, err = inspect(true, "--method", "tools/call", "--tool-name", "time_now", "--tool-arg", "timezone=Europe/Paris")
	if err != nil || !strings.Contains(out, "Europe/Paris") {
		t.Fatalf("tools/call: %v\n%s", err, out)
	}
	t.Logf("time_now via the inspector: %s", out)
	out, err = inspect(false, "--method", "tools/list")
	if err == nil {
		t.Fatalf("tools/list without a credential succeeded:\n%s", out)
	}
	t.Logf("without a credential: %v: %s", err, out)
}

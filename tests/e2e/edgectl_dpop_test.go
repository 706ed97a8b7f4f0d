package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

// edgectl runs bin/edgectl with its own config directory (a file-backed
// credential store) and trusting the TLS balancer's certificate.
type edgectl struct {
	t    *testing.T
	bin  string
	env  []string
	home string
}

func newEdgectl(t *testing.T, b *tlsBalancer) *edgectl {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "edgectl")
	if dir := os.Getenv("EDGEGUARD_BIN"); dir != "" {
		bin = filepath.Join(dir, "edgectl")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no edgectl binary (make build): %v", err)
	}
	home := t.TempDir()
	return &edgectl{t: t, bin: bin, home: home, env: []string{
		"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "EDGEGUARD_KEYRING=file",
		"SSL_CERT_FILE=" + b.cert, "PATH=" + os.Getenv("PATH"),
	}}
}

func (c *edgectl) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env
	return cmd
}

// run runs edgectl to the end; stdin is given to it.
func (c *edgectl) run(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), time.Minute)
	defer cancel()
	cmd := c.cmd(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("edgectl %s: %v", args[0], err)
	}
	return out.String(), errb.String(), code
}

var userCodeRE = regexp.MustCompile(`user_code=([A-Z0-9-]+)`)

// login runs "edgectl login" and approves the device in the (Go) browser.
func (c *edgectl) login(s *suite, user string, pw keycloak.Secret, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 90*time.Second)
	defer cancel()
	cmd := c.cmd(ctx, append([]string{"login"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var all strings.Builder
	approved := false
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if m := userCodeRE.FindStringSubmatch(line); m != nil && !approved {
			approved = true
			s.deviceApprove(c.t, device{UserCode: m[1]}, user, pw)
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		c.t.Fatalf("edgectl login: %v\nstdout %q\nstderr %q", err, all.String(), errb.String())
	}
	return all.String()
}

// TestEdgectlDPoPSessionThroughTheGateway: edgectl against the real
// Keycloak and the real Kong. "edgectl login --client jan-agent" (DPoP on
// by default: the realm requires it) polls Keycloak through the gateway with
// proofs and stores a bound session; "keys create/list/revoke" reach
// llm-api through nginx (TLS) and the Kong nodes with "Authorization: DPoP"
// and a proof per request; "token --refresh" refreshes with a proof of the
// same key; "token proof" lets a script send its own request; "logout"
// revokes.
func TestEdgectlDPoPSessionThroughTheGateway(t *testing.T) {
	s, e := requireEdge(t)
	b := e.tlsBalancer(t)
	c := newEdgectl(t, b)
	_, user, pw := s.createUser(t)
	server := e.Env["GATEWAY_PUBLIC_URL"]

	out := c.login(s, user, pw, "--server", server, "--client", clientAgent)
	if !strings.Contains(out, "DPoP-bound to this session's key") {
		t.Fatalf("login output: %q", out)
	}
	who, _, code := c.run("", "whoami", "--json")
	var w struct {
		Azp     string `json:"azp"`
		DPoPJKT string `json:"dpop_jkt"`
	}
	if code != 0 || json.Unmarshal([]byte(who), &w) != nil || w.Azp != clientAgent || len(w.DPoPJKT) != 43 {
		t.Fatalf("whoami: %d %s", code, who)
	}

	created, stderr, code := c.run("", "keys", "create", "--name", "dpop-"+randHex(4), "--api", b.public, "--json")
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if code != 0 || json.Unmarshal([]byte(created), &k) != nil || !strings.HasPrefix(k.Key, "sk_") {
		t.Fatalf("keys create through the TLS balancer: exit %d, stderr %q", code, stderr)
	}
	used.add(k.Key)
	if list, stderr, code := c.run("", "keys", "list", "--api", b.public, "--json"); code != 0 || !strings.Contains(list, k.ID) {
		t.Fatalf("keys list: exit %d %q", code, stderr)
	}
	if _, stderr, code := c.run("", "keys", "revoke", k.ID, "--api", b.public); code != 0 {
		t.Fatalf("keys revoke: exit %d %q", code, stderr)
	}

	tok1, _, _ := c.run("", "token")
	tok2, stderr, code := c.run("", "token", "--refresh")
	tok1, tok2 = strings.TrimSpace(tok1), strings.TrimSpace(tok2)
	used.add(tok1)
	used.add(tok2)
	if code != 0 || tok2 == "" || tok2 == tok1 {
		t.Fatalf("token --refresh: exit %d %q", code, stderr)
	}
	jkt := func(tok string) any { return segment(t, tok, 1)["cnf"].(map[string]any)["jkt"] }
	if jkt(tok2) != w.DPoPJKT || jkt(tok1) != w.DPoPJKT {
		t.Fatal("the refreshed token is not bound to the session's key")
	}

	// a script: the token and a proof for its own request
	url := b.public + "/v1/models"
	proof, stderr, code := c.run(tok2, "token", "proof", "--method", "GET", "--url", url, "-")
	proof = strings.TrimSpace(proof)
	if code != 0 || strings.Count(proof, ".") != 2 {
		t.Fatalf("token proof: exit %d %q", code, stderr)
	}
	for i, want := range []int{200, 401} { // the second time: a replay
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		req.Header.Set("Authorization", "DPoP "+tok2)
		req.Header.Set("DPoP", proof)
		res, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("request %d with the script's proof: %d, want %d", i, res.StatusCode, want)
		}
	}

	if out, stderr, code := c.run("", "logout"); code != 0 {
		t.Fatalf("logout: exit %d %q %q", code, out, stderr)
	}
	if _, _, code := c.run("", "token", "--server", server); code != 1 {
		t.Fatalf("token after logout: exit %d", code)
	}
}

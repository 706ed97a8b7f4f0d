package soak

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/bench/internal/rig"
	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// start runs a built binary until the test ends and waits for url to answer.
func start(t *testing.T, url string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, name), args...)
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return cmd
		}
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("%s did not answer on %s:\n%s", name, url, b)
	return nil
}

// A short soak through the real Kong (scripts/kong.sh) with the bench
// kong.yml, the stub upstream and real Redis: every check but memory (too
// short to say; sampled on the edgeguard plugin server) holds, and every
// kind of request gets the answers the design says.
func TestShortSoakThroughKong(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	redisAddr := testenv.RedisAddr(t)
	dir := t.TempDir()
	stubAddr := testenv.FreeAddr(t)
	start(t, "http://"+stubAddr+"/v1/models", "stub-upstream", "-addr", stubAddr)

	keys := make([]apikey.Key, 2)
	var secrets []string
	for i := range keys {
		keys[i], _ = apikey.Generate(apikey.EnvLive)
		secrets = append(secrets, keys[i].Secret())
	}
	token := "bench-internal-token-0123456789abcdef"
	r, err := rig.New([]byte(token), keys)
	if err != nil {
		t.Fatal(err)
	}
	rs := httptest.NewServer(r)
	t.Cleanup(rs.Close)
	r.Issuer = rs.URL + "/realms/bench"
	// Secrets as kong.yml names them in production (/etc/kong/secrets/…):
	// scripts/kong.sh copies them for Kong's user.
	secretDir := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := edgeid.WriteKeyFiles(filepath.Join(secretDir, "edge_identity.pem"), filepath.Join(secretDir, "edge_identity.jwks.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secretDir, "internal_token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y, err := rig.KongYML(rig.KongConfig{StubURL: "http://" + stubAddr, Issuer: r.Issuer, JWKSURL: rs.URL + rig.JWKSPath,
		ValidateURL: rs.URL + rig.ValidatePath, InternalTokenFile: "/etc/kong/secrets/internal_token",
		EdgeKeyFile: "/etc/kong/secrets/edge_identity.pem", RedisAddr: redisAddr})
	if err != nil {
		t.Fatal(err)
	}
	gwURL, pid := startKong(t, y, secretDir)

	jwt, err := r.Mint("bench-user", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RecordSecret(append([]string{token, jwt}, secrets...)...) // the run's secret sweep (scripts/test.sh)
	creds, err := NewCredentials(r.Issuer, r.KID, jwt, secrets)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{URL: gwURL + rig.ChainPath, RigURL: rs.URL, Creds: creds, Rate: 40,
		Duration: 2 * time.Second, Warmup: time.Second, SampleEvery: 200 * time.Millisecond, PID: pid})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	res.Write(&report)
	for _, c := range res.Checks {
		if !c.OK && c.Name != "memory flat" {
			t.Errorf("check %q failed: %s\n%s", c.Name, c.Detail, report.String())
		}
	}
	allowed := map[Kind][]string{
		ValidJWT: {"200"}, ValidKey: {"200"}, BadSignature: {"401 signature_invalid"}, UnknownKID: {"401 unknown_kid"},
		Garbage:   {"401 token_malformed", "401 alg_not_allowed"},
		RandomKey: {"401 key_unknown", "429 too_many_auth_failures"},
	}
	for k, outs := range allowed {
		for o, n := range res.ByKind[k.String()] {
			if !strings.Contains(strings.Join(outs, "|"), o) {
				t.Errorf("%v: %d × %q, want one of %v", k, n, o, outs)
			}
		}
	}
	if res.Sent != 120 || res.ByClass["2xx"] != 96 {
		t.Errorf("sent %d, 2xx %d; want 120 and 96\n%s", res.Sent, res.ByClass["2xx"], report.String())
	}
}

// startKong runs the real Kong on kong.yml y (scripts/kong.sh: loopback,
// Kong's non-root user, secrets copied from the folder secrets) until the
// test ends; it returns the proxy's URL and the edgeguard plugin server's
// pid (the process whose memory the soak samples). Without a Kong the test
// skips locally and fails under CI=true (testenv.CI).
func startKong(t *testing.T, y []byte, secrets string) (string, int) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "edgeguard-soak-kong-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kong.yml"), y, 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "kong.sh")
	bin := filepath.Dir(testenv.Binary(t, "edgeguard"))
	run := filepath.Join(dir, "run")
	cmd := exec.Command(script, "start", "--dir", run, "--config", filepath.Join(dir, "kong.yml"), "--bin", bin, "--secrets", secrets)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if testenv.CI() {
			t.Fatalf("scripts/kong.sh start: %v\n%s", err, stderr.String())
		}
		t.Skipf("no Kong (scripts/kong.sh start: %v)", err)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", "--dir", run).Run() })
	env := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	pid, err := exec.Command("pgrep", "-f", "edgeguard -kong-prefix "+env["KONG_PREFIX"]).Output()
	if err != nil {
		t.Fatalf("no edgeguard plugin server under %s: %v", env["KONG_PREFIX"], err)
	}
	n, err := strconv.Atoi(strings.Fields(string(pid))[0])
	if err != nil {
		t.Fatal(err)
	}
	return env["KONG_PROXY_URL"], n
}

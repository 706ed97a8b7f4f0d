package soak

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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

// A short soak through the real dev gateway, its bench kong.yml, the stub
// upstream and real Redis: every check but memory (too short to say) holds,
// and every kind of request gets the answers the design says.
func TestShortSoakThroughTheDevGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	redisAddr := testenv.RedisAddr(t)
	dir := t.TempDir()
	stubAddr, gwAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
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
	keyFile := filepath.Join(dir, "edge.pem")
	if err := edgeid.WriteKeyFiles(keyFile, filepath.Join(dir, "edge.jwks.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "internal_token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y, err := rig.KongYML(rig.KongConfig{StubURL: "http://" + stubAddr, Issuer: r.Issuer, JWKSURL: rs.URL + rig.JWKSPath,
		ValidateURL: rs.URL + rig.ValidatePath, InternalTokenFile: filepath.Join(dir, "internal_token"), EdgeKeyFile: keyFile,
		RedisAddr: redisAddr})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kong.yml"), y, 0o600); err != nil {
		t.Fatal(err)
	}
	gw := start(t, "http://"+gwAddr+"/plain", "devgateway", "--config", filepath.Join(dir, "kong.yml"), "--listen", gwAddr,
		"--trusted-proxies", "127.0.0.1")

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
	res, err := Run(ctx, Config{URL: "http://" + gwAddr + rig.ChainPath, RigURL: rs.URL, Creds: creds, Rate: 40,
		Duration: 2 * time.Second, Warmup: time.Second, SampleEvery: 200 * time.Millisecond, PID: gw.Process.Pid})
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

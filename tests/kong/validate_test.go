package kong

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateScriptChecksWithKongItself: kong/validate.sh, which
// kong/Dockerfile runs at build time instead of `kong config parse` (that
// command crashes in Kong 3.9 whenever plugin servers are configured),
// accepts the repository's kong.conf and kong.yml as they are — host names,
// secret paths and all, nothing rendered but the listeners and paths of
// this machine — and refuses a kong.yml whose plugin config breaks a
// plugin's -dump schema, naming the field.
func TestValidateScriptChecksWithKongItself(t *testing.T) {
	requireKong(t)
	root := repoRoot(t)
	good, err := os.ReadFile(filepath.Join(root, "kong", "kong.yml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(good, []byte("max_headers: 100"), []byte(`max_headers: "many"`), 1)
	if bytes.Equal(bad, good) {
		t.Fatal("kong.yml has no max_headers: 100 to break")
	}
	dir, err := os.MkdirTemp("", "edgeguard-kong-validate-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	badPath := filepath.Join(dir, "bad.kong.yml")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	validate := func(config string) (string, error) {
		args := []string{"validate", "--dir", filepath.Join(dir, "run"), "--bin", realBin(t)}
		if config != "" {
			args = append(args, "--config", config)
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "kong.sh"), args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := validate(""); err != nil || !strings.Contains(out, "Kong accepted") {
		t.Fatalf("validate.sh on the repository's kong.yml: %v\n%s", err, lastLines(out, 20))
	}
	out, err := validate(badPath)
	if err == nil {
		t.Fatalf("validate.sh accepted max_headers: \"many\":\n%s", lastLines(out, 20))
	}
	if !strings.Contains(out, "max_headers") || !strings.Contains(out, "expected an integer") {
		t.Errorf("the refusal does not name the field and the reason:\n%s", lastLines(out, 20))
	}
}

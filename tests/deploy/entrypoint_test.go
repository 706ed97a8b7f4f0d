package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeycloakEntrypointExportsFileVariables runs docker/keycloak-entrypoint.sh
// with `env` standing in for kc.sh: KC_*_FILE and JAN_*_FILE become the
// variables without the suffix, other *_FILE stay, both forms are refused.
func TestKeycloakEntrypointExportsFileVariables(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := strings.ReplaceAll(string(repoFile(t, "docker/keycloak-entrypoint.sh")), "/opt/keycloak/bin/kc.sh", "env")
	if !strings.Contains(script, "exec env \"$@\"") {
		t.Fatal("the entrypoint no longer ends with exec /opt/keycloak/bin/kc.sh \"$@\"")
	}
	dir := t.TempDir()
	entry := filepath.Join(dir, "entrypoint.sh")
	secret := filepath.Join(dir, "pw")
	if err := os.WriteFile(entry, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command(bash, entry)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("KC_DB_PASSWORD_FILE="+secret, "JAN_LLM_API_CLIENT_SECRET_FILE="+secret, "OTHER_FILE=/x")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"KC_DB_PASSWORD=s3cret-value\n", "JAN_LLM_API_CLIENT_SECRET=s3cret-value\n", "OTHER_FILE=/x\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("environment lacks %q", want)
		}
	}
	if strings.Contains(out, "KC_DB_PASSWORD_FILE=") {
		t.Error("KC_DB_PASSWORD_FILE was not unset")
	}
	if out, err := run("KC_DB_PASSWORD=x", "KC_DB_PASSWORD_FILE="+secret); err == nil || !strings.Contains(out, "both") {
		t.Errorf("both forms accepted: %v %s", err, out)
	}
	if out, err := run("KC_DB_PASSWORD_FILE=" + filepath.Join(dir, "missing")); err == nil || strings.Contains(out, "s3cret") {
		t.Errorf("a missing file was accepted: %v %s", err, out)
	}
}

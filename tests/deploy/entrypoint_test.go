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

// TestKongEntrypointExportsFileVariables runs kong/entrypoint.sh with `env`
// standing in for the image's /docker-entrypoint.sh: EDGEGUARD_*_FILE
// become the variables Kong's env vault reads (kong.yml's
// {vault://env/edgeguard-edge-client-key} is EDGEGUARD_EDGE_CLIENT_KEY), a
// PEM's lines intact; both forms and unreadable files are refused without
// showing a value.
func TestKongEntrypointExportsFileVariables(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := strings.ReplaceAll(string(repoFile(t, "kong/entrypoint.sh")), "/docker-entrypoint.sh", "env")
	if !strings.Contains(script, "exec env \"$@\"") {
		t.Fatal("the entrypoint no longer ends with exec /docker-entrypoint.sh \"$@\"")
	}
	dir := t.TempDir()
	entry := filepath.Join(dir, "entrypoint.sh")
	key := filepath.Join(dir, "edge_client.key")
	pemKey := "-----BEGIN PRIVATE KEY-----\nTUlHSEFnRUFNQk1HQnlxR1NNNDlBZ0VHQ0NxR1NNNDlBd0VIQkcw\n-----END PRIVATE KEY-----\n"
	if err := os.WriteFile(entry, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte(pemKey), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command(bash, entry)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("EDGEGUARD_EDGE_CLIENT_KEY_FILE="+key, "KONG_TRUSTED_IPS=192.0.2.0/24", "OTHER_FILE=/x")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"EDGEGUARD_EDGE_CLIENT_KEY=" + strings.TrimSuffix(pemKey, "\n") + "\n", "KONG_TRUSTED_IPS=192.0.2.0/24\n", "OTHER_FILE=/x\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("environment lacks %q", want)
		}
	}
	if strings.Contains(out, "EDGEGUARD_EDGE_CLIENT_KEY_FILE=") {
		t.Error("EDGEGUARD_EDGE_CLIENT_KEY_FILE was not unset")
	}
	if out, err := run("EDGEGUARD_EDGE_CLIENT_KEY=x", "EDGEGUARD_EDGE_CLIENT_KEY_FILE="+key); err == nil || !strings.Contains(out, "both") || strings.Contains(out, "TUlH") {
		t.Errorf("both forms accepted (or the value shown): %v %s", err, out)
	}
	if out, err := run("EDGEGUARD_EDGE_CLIENT_KEY_FILE=" + filepath.Join(dir, "missing")); err == nil {
		t.Errorf("a missing file was accepted: %s", out)
	}
}

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// TestBinaryExitCodes builds edgectl and runs it as a process: the exit
// codes scripts see are the real ones, not Run's return value.
func TestBinaryExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "edgectl")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	realm := jwttest.New(t)
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, realm.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := realm.Token(t, "u1", nil)

	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string // prefix
	}{
		{"version", "", []string{"--version"}, 0, "edgectl "},
		{"jws verify valid", tok + "\n", []string{"jws", "verify", "--jwks", jwks, "-"}, 0, `{"valid":true,"kid":"kid-0","alg":"RS256"}`},
		{"jws verify garbage", "garbage", []string{"jws", "verify", "--jwks", jwks, "-"}, 1, `{"valid":false,"reason":"token_malformed"}`},
		{"jws verify without token", "", []string{"jws", "verify", "--jwks", jwks, "-"}, 2, ""},
		{"no command", "", nil, 2, ""},
		{"token verify by discovery", tok, []string{"token", "verify", "--issuer", realm.Issuer, "-"}, 0, `{"valid":true,"identity":{"sub":"u1"`},
		{"whoami without a server", "", []string{"whoami"}, 2, ""},
		{"whoami not logged in", "", []string{"whoami", "--server", "https://edge.example.com"}, 1, ""},
		{"token not logged in", "", []string{"token", "--server", "https://edge.example.com"}, 1, ""},
		{"doctor", "", []string{"doctor", "--server", "https://edge.example.com"}, 0, "server "},
		{"run: command not found (before any login or key)", "", []string{"run", "--server", "https://edge.example.com", "--", "edgectl-no-such-command"}, 127, ""},
		{"run: not logged in", "", []string{"run", "--server", "https://edge.example.com", "--", "true"}, 125, ""},
		{"run: usage", "", []string{"run", "--server", "https://edge.example.com", "--ttl", "2h", "--", "true"}, 2, ""},
		{"token verify wrong audience", tok, []string{"token", "verify", "--issuer", realm.Issuer, "--jwks", jwks, "--audience", "other", "-"}, 1, `{"valid":false,"reason":"audience_mismatch"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := exec.Command(bin, tt.args...)
			c.Stdin = strings.NewReader(tt.stdin)
			// a private config directory, and no keyring probing
			c.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir, "EDGEGUARD_KEYRING=file", "EDGEGUARD_SERVER=")
			var out, errb bytes.Buffer
			c.Stdout, c.Stderr = &out, &errb
			err := c.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.HasPrefix(out.String(), tt.stdout) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q", code, out.String(), errb.String(), tt.code, tt.stdout)
			}
			if strings.Contains(out.String()+errb.String(), tok) {
				t.Fatal("the token was printed")
			}
		})
	}
}

package secretsweep

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/apikey"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestScan(t *testing.T) {
	key, err := apikey.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	jwt := b64(`{"alg":"RS256","kid":"k1"}`) + "." + b64(`{"sub":"someone","exp":1}`) + "." + strings.Repeat("s", 40)
	registered := "pepper-0123456789abcdef"
	tests := []struct {
		name string
		log  string
		want []string
	}{
		{"clean", `{"level":"info","message":"request","status":200}`, nil},
		{"registered secret", `{"message":"x","v":"` + registered + `"}`, []string{"registered secret #0"}},
		{"jwt", `Authorization: Bearer ` + jwt, []string{"jwt"}},
		{"api key", `{"key":"` + key.Secret() + `"}`, []string{"api key"}},
		{"redacted key id only", `{"key_id":"` + key.KID() + `","authorization":"[REDACTED]"}`, nil},
		{"eyJ text that is not a JWT", `eyJhbGciOi.eyJub3RqdXN0.` + strings.Repeat("x", 20) + ` eyJzzzzzzzzzz.eyJzzzzzzzzzz.zzzzzzzzzzzzzzzzzzzz`, nil},
		{"sk_ text with a wrong checksum", `sk_live_` + strings.Repeat("A", 40), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Scan("log", strings.NewReader("first line\n"+tc.log+"\n"), []string{registered})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, f := range got {
				if f.Line != 2 || f.File != "log" {
					t.Errorf("finding at %s", f)
				}
				kinds = append(kinds, f.Kind)
			}
			if strings.Join(kinds, ",") != strings.Join(tc.want, ",") {
				t.Errorf("found %v, want %v", kinds, tc.want)
			}
			for _, f := range got {
				if strings.Contains(f.String(), registered) || strings.Contains(f.String(), key.Secret()) {
					t.Error("a finding prints the secret")
				}
			}
		})
	}
}

func TestLoadRegisteredAndFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("EDGEGUARD_TEST_SECRETS_DIR", dir)
	lines := base64.StdEncoding.EncodeToString([]byte("internal-token-abcdef0123")) + "\n" +
		base64.StdEncoding.EncodeToString([]byte("internal-token-abcdef0123")) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "secrets-1.txt"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets, err := LoadRegistered(dir)
	if err != nil || len(secrets) != 1 {
		t.Fatalf("LoadRegistered: %v %v", secrets, err)
	}
	logs := t.TempDir()
	_ = os.WriteFile(filepath.Join(logs, "a.log"), []byte("ok\n"), 0o600)
	_ = os.MkdirAll(filepath.Join(logs, "sub"), 0o700)
	_ = os.WriteFile(filepath.Join(logs, "sub", "b.log"), []byte("token internal-token-abcdef0123\n"), 0o600)
	found, files, err := Files([]string{logs}, secrets)
	if err != nil || files != 2 || len(found) != 1 || !strings.HasSuffix(found[0].File, "b.log") {
		t.Fatalf("Files: %v, %d files, %v", found, files, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets-2.txt"), []byte("not base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRegistered(dir); err == nil {
		t.Fatal("a corrupt registry was accepted")
	}
}

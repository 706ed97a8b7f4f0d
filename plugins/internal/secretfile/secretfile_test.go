package secretfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFileRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const good = "Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"
	tests := []struct {
		name, path string
		want       string // error prefix; "" = ok
	}{
		{"ok", write("ok", good+"\n"), ""},
		{"unset", "", ""},
		{"missing", filepath.Join(dir, "nope"), "internal_token_file: cannot read "},
		{"empty", write("empty", "\r\n"), "internal_token_file: " + filepath.Join(dir, "empty") + " is empty"},
		{"short", write("short", good[:31]), "internal_token_file: " + filepath.Join(dir, "short") + " holds 31 bytes, at least 32"},
		{"placeholder", write("ph", "changeme-changeme-changeme-changeme"), "internal_token_file: " + filepath.Join(dir, "ph") + " holds a placeholder"},
		{"template expression", write("tpl", "${INTERNAL_TOKEN}-0123456789abcdef0123456789"), "internal_token_file: " + filepath.Join(dir, "tpl") + " holds a placeholder"},
		{"repeated", write("rep", strings.Repeat("x", 40)), "internal_token_file: " + filepath.Join(dir, "rep") + " holds a placeholder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ReadSecretFile("internal_token_file", tc.path, MinInternalToken)
			if tc.want == "" {
				if err != nil || (tc.path != "" && v != good) {
					t.Fatalf("%q %v", v, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err %v, want prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), good[:16]) || strings.Contains(err.Error(), "changeme") {
				t.Fatal("the error carries the content")
			}
		})
	}
}

func TestSecretFileValueFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	const t1, t2 = "t1-Hq3Lm8Zp2Rv6Wx9Yc4Bn7Kd1Fg5Js0Ta", "t2-Nw5Qe8Ru1Ty4Ui7Op0As3Df6Gh9Jk2Lz"
	if err := os.WriteFile(p, []byte(t1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := SecretFileValue("internal_token_file", p, MinInternalToken)
	if err != nil || string(v.Get()) != t1 {
		t.Fatal(err)
	}
	if again, _ := SecretFileValue("internal_token_file", p, MinInternalToken); again != v {
		t.Fatal("one value per file")
	}
	tmp := filepath.Join(dir, "token.new")
	if err := os.WriteFile(tmp, []byte(t2), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if changed, _, err := v.Refresh(context.Background()); !changed || err != nil || string(v.Get()) != t2 {
		t.Fatal("rotation not seen", changed, err)
	}
	if err := os.WriteFile(p, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Refresh(context.Background()); err == nil || string(v.Get()) != t2 {
		t.Fatal("a refused content replaced the token", err)
	}
	if _, err := SecretFileValue("internal_token_file", filepath.Join(dir, "nope"), MinInternalToken); err == nil {
		t.Fatal("missing file accepted")
	}
}

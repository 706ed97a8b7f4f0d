package secretgen

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestGenerateWritesAConsistentSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := Generate(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v; want 0700", fi.Mode(), err)
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]string{}
	for _, name := range Random {
		v := read(t, dir, name)
		if !hex64.MatchString(v) {
			t.Errorf("%s is not 64 hex characters", name)
		}
		if other, dup := seen[v]; dup {
			t.Errorf("%s and %s are equal", name, other)
		}
		seen[v] = name
	}
	for _, name := range All() {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == MTLSCAKey {
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600 (mounted nowhere)", name, fi.Mode().Perm())
			}
			continue
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 (bind-mounted into other users' containers)", name, fi.Mode().Perm())
		}
	}
	sum := sha256.Sum256([]byte(read(t, dir, RedisPassword)))
	if acl := read(t, dir, RedisACL); acl != "user default on #"+hex.EncodeToString(sum[:])+" ~* &* +@all" {
		t.Errorf("ACL %q does not carry the password's SHA-256", acl)
	}
	if strings.Contains(read(t, dir, RedisACL), read(t, dir, RedisPassword)) {
		t.Error("the ACL file contains the password itself")
	}
	if url := read(t, dir, LLMAPIDatabaseURL); url != "postgres://llmapi:"+read(t, dir, LLMAPIDBPassword)+"@postgres:5432/llmapi?sslmode=disable" {
		t.Errorf("database URL %q does not match the llm-api database password", url)
	}
	// The edge key signs what the JWKS verifies.
	signer, err := edgeid.LoadSigner(filepath.Join(dir, EdgeIdentityKey))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := edgeid.LoadVerifier(filepath.Join(dir, EdgeIdentityJWKS), "llm-api")
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(&identity.Identity{Subject: "u1"}, "llm-api", "GET", "/v1/models", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := verifier.Verify(jws, "GET", "/v1/models"); err != nil || id.Subject != "u1" {
		t.Fatalf("verify: %v, %v", id, err)
	}
}

func TestGenerateKeepsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LLMAPIDBPassword), []byte("kept-password-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Generate(dir, Options{DatabaseHostPort: "db.internal:5432"}); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, name := range All() {
		before[name] = read(t, dir, name)
	}
	if got := before[LLMAPIDatabaseURL]; got != "postgres://llmapi:kept-password-0123456789@db.internal:5432/llmapi?sslmode=disable" {
		t.Errorf("URL %q is not derived from the existing password", got)
	}
	if err := Generate(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range All() {
		if read(t, dir, name) != before[name] {
			t.Errorf("a second run changed %s", name)
		}
	}
}

func TestGenerateRefusesHalfAnEdgeKeyPair(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, EdgeIdentityJWKS), []byte(`{"keys":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Generate(dir, Options{}); err == nil || !strings.Contains(err.Error(), "delete both") {
		t.Fatalf("err = %v, want a refusal naming both files", err)
	}
}

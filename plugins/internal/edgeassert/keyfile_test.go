package edgeassert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
	"github.com/rs/zerolog"
)

// A rotated edge_signing_key_file (a new file renamed over the old one, as
// an operator or Kubernetes' symlink swap does) signs from the next check
// on, without a new instance or a restart; a broken replacement keeps the
// current key and is logged once.
func TestSigningKeyFileRotationWithoutRestart(t *testing.T) {
	key1, jwks1 := plugintest.EdgeKey(t)
	key2, jwks2 := plugintest.EdgeKey(t)
	a, err := New("llm-api", key1)
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.Buffer
	a.key.log = zerolog.New(&logs)
	verifies := func(jwks []byte) bool {
		t.Helper()
		f := exchange.NewFake("GET", "/v1/models", nil)
		if err := a.Add(f, &identity.Identity{Subject: "u", AuthMethod: "jwt"}); err != nil {
			t.Fatal("Add failed")
		}
		v, err := edgeid.NewVerifier(jwks, "llm-api", time.Now)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(f.Upstream[identity.HeaderEdgeIdentity], "GET", "/v1/models")
		return err == nil
	}
	if !verifies(jwks1) || verifies(jwks2) {
		t.Fatal("before the rotation: key 1 must sign")
	}
	a.key.check() // unchanged: nothing happens
	if !verifies(jwks1) || logs.String() != "" {
		t.Fatalf("unchanged file: %s", logs.String())
	}

	if err := os.Rename(key2, key1); err != nil { // the new key replaces the old one atomically
		t.Fatal(err)
	}
	a.key.check()
	if verifies(jwks1) || !verifies(jwks2) {
		t.Fatal("after the rotation: key 2 must sign")
	}
	if !strings.Contains(logs.String(), "edge signing key rotated") {
		t.Fatalf("rotation not logged: %s", logs.String())
	}
	// a second instance on the same path shares the current key
	b, err := New("llm-api", key1)
	if err != nil || b.key != a.key {
		t.Fatal("instances on one path must share its key", err)
	}

	broken := filepath.Join(t.TempDir(), "broken.pem")
	if err := os.WriteFile(broken, []byte("-----BEGIN PRIVATE KEY-----\nnot a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, key1); err != nil {
		t.Fatal(err)
	}
	a.key.check()
	a.key.check()
	if !verifies(jwks2) {
		t.Fatal("a broken replacement must keep the current key")
	}
	if n := strings.Count(logs.String(), "cannot load the changed signing key"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatal("the key file's content reached the log")
	}
}

package jwksfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

func write(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRealmJWKS(t *testing.T) {
	realm := jwttest.New(t)
	set, err := Load(write(t, realm.JWKS()))
	if err != nil {
		t.Fatal(err)
	}
	if set.Keys.Len() != 1 || set.Private {
		t.Fatalf("keys %d private %v", set.Keys.Len(), set.Private)
	}
}

func TestLoadRejectsUnusableFiles(t *testing.T) {
	tests := []struct {
		name string
		doc  []byte
		want string
		is   error
	}{
		{name: "empty", doc: nil, want: "jwks"},
		{name: "not JSON", doc: []byte("-----BEGIN PUBLIC KEY-----"), want: "jwks"},
		{name: "no keys", doc: []byte(`{"keys":[]}`), want: "no usable signature keys"},
		{name: "only symmetric and encryption keys", doc: []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},{"kty":"EC","crv":"P-256","kid":"e","use":"enc","x":"AA","y":"AA"}]}`), want: "no usable signature keys"},
		{name: "larger than 1 MiB", doc: []byte(`{"keys":[` + strings.Repeat(" ", MaxBytes) + `]}`), is: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Fatalf("error carries key material: %v", err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestHasPrivate(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}`:                      false,
		`{"keys":[{"kty":"RSA","n":"x","e":"AQAB"},{"kty":"EC","d":"x"}]}`: true,
		`{"keys":[{"kty":"oct","k":"x"}]}`:                                 true,
		`{"kty":"OKP","crv":"Ed25519","x":"x","d":"x"}`:                    true,
		`{"kty":"OKP","crv":"Ed25519","x":"x"}`:                            false,
		`not json`:                                                         false,
	} {
		if got := hasPrivate([]byte(doc)); got != want {
			t.Errorf("hasPrivate(%s) = %v", doc, got)
		}
	}
}

package credstore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

const server = "https://edge.example.com"

// A realistic token: three base64url parts.
var (
	accessToken  = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImtpZC0xIn0.eyJzdWIiOiJ1MSIsImF6cCI6Imphbi1jbGkiLCJleHAiOjE5MDAwMDAwMDB9.c2lnbmF0dXJlLWJ5dGVzLW9mLXRoZS1hY2Nlc3MtdG9rZW4"
	refreshToken = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJ0eXAiOiJSZWZyZXNoIiwic2lkIjoiczEifQ.cmVmcmVzaC1zaWduYXR1cmUtYnl0ZXMtaGVyZQ"
)

func creds(srv string) *Credentials {
	return &Credentials{
		Server: srv, Realm: "jan", ClientID: "jan-cli", Issuer: srv + "/realms/jan",
		TokenEndpoint: srv + "/realms/jan/protocol/openid-connect/token", JWKSURI: srv + "/realms/jan/protocol/openid-connect/certs",
		AccessToken: Secret(accessToken), RefreshToken: Secret(refreshToken),
		ExpiresAt: time.Unix(1_900_000_000, 0).UTC(),
		Identity:  identity.Identity{Subject: "u1", Username: "alice", RealmRoles: []string{"user"}, AuthMethod: "jwt"},
	}
}

func newStore(t *testing.T, mode Mode, ring Keyring) *Store {
	t.Helper()
	s, err := New(Options{Dir: filepath.Join(t.TempDir(), "edgeguard"), Mode: mode, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// secretsIn lists every form in which a token could leak into the file: the
// token, each base64url part, each part decoded, and standard base64.
func secretsIn(tokens ...string) [][]byte {
	var out [][]byte
	for _, tok := range tokens {
		out = append(out, []byte(tok), []byte(base64.StdEncoding.EncodeToString([]byte(tok))))
		for _, p := range strings.Split(tok, ".") {
			out = append(out, []byte(p))
			if d, err := base64.RawURLEncoding.DecodeString(p); err == nil && len(d) >= 8 {
				out = append(out, d)
			}
		}
	}
	return out
}

func TestSaveLoadRoundTripWithModesAndNoPlaintext(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode Mode
		ring Keyring
		want string
	}{
		{"file fallback", ModeFile, nil, StoreFile},
		{"OS keyring", ModeAuto, &MemoryKeyring{}, StoreKeyring},
		{"auto falls back when the keyring refuses", ModeAuto, &MemoryKeyring{Fail: errors.New("dbus: no secret service")}, StoreFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.mode, tc.ring)
			if err := s.Save(creds(server)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load(server)
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessToken != Secret(accessToken) || got.RefreshToken != Secret(refreshToken) || got.Identity.Username != "alice" {
				t.Fatalf("round trip: %+v", got)
			}
			if m := mode(t, s.Path(server)); m != 0o600 {
				t.Errorf("credential file mode %04o, want 0600", m)
			}
			for _, d := range []string{s.Dir(), s.CredDir()} {
				if m := mode(t, d); m != 0o700 {
					t.Errorf("%s mode %04o, want 0700", d, m)
				}
			}
			_, keyErr := os.Stat(s.KeyPath(server))
			if tc.want == StoreFile {
				if m := mode(t, s.KeyPath(server)); m != 0o600 {
					t.Errorf("key file mode %04o, want 0600", m)
				}
			} else if !os.IsNotExist(keyErr) {
				t.Errorf("a key file exists although the key is in the keyring: %v", keyErr)
			}
			in, _ := s.Inspect(server)
			if in.KeyStore != tc.want || in.Problem != "" {
				t.Errorf("Inspect: key store %q problem %q, want %q", in.KeyStore, in.Problem, tc.want)
			}
			raw, err := os.ReadFile(s.Path(server))
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range secretsIn(accessToken, refreshToken) {
				if bytes.Contains(raw, sec) {
					t.Fatalf("the credential file carries %q in clear", sec)
				}
			}
			for _, word := range []string{"alice", "jan-cli", "access_token", "refresh_token"} {
				if bytes.Contains(raw, []byte(word)) {
					t.Errorf("the credential file shows %q: the whole content must be encrypted", word)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(s.CredDir(), ".tmp-*")); len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestEveryWriteUsesAFreshNonce(t *testing.T) {
	s := newStore(t, ModeFile, nil)
	var nonces []string
	for range 3 {
		if err := s.Save(creds(server)); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(s.Path(server))
		e, err := ParseEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nonces {
			if n == string(e.Nonce) {
				t.Fatal("nonce reused")
			}
		}
		nonces = append(nonces, string(e.Nonce))
	}
}

func TestFileDecryptsOnlyWithItsKey(t *testing.T) {
	s := newStore(t, ModeFile, nil)
	if err := s.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	other := newStore(t, ModeFile, nil)
	if err := other.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := os.ReadFile(other.KeyPath(server))
	if err := os.WriteFile(s.KeyPath(server), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(server)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "log in again") {
		t.Fatalf("another key: %v, want ErrWrongKey with advice", err)
	}

	// The same with the key in a keyring.
	ring := &MemoryKeyring{}
	k := newStore(t, ModeKeyring, ring)
	if err := k.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	svc, user := KeyringItem(server)
	otherRing := &MemoryKeyring{}
	if err := newStoreWith(t, otherRing).Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	ov, _ := otherRing.Get(svc, user)
	_ = ring.Set(svc, user, ov)
	if _, err := k.Load(server); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another keyring key: %v, want ErrWrongKey", err)
	}

	// A key with the right id that is not the key is impossible to build
	// (the id is a hash of the key); Open checks it anyway.
	raw, _ := os.ReadFile(s.Path(server))
	e, _ := ParseEnvelope(raw)
	if _, err := Open(e, server, make([]byte, 32)); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open with a zero key: %v", err)
	}

	// The key gone.
	_ = os.Remove(s.KeyPath(server))
	if _, err := s.Load(server); !errors.Is(err, ErrKeyMissing) {
		t.Errorf("no key file: %v, want ErrKeyMissing", err)
	}
	_ = ring.Delete(svc, user)
	if _, err := k.Load(server); !errors.Is(err, ErrKeyMissing) {
		t.Errorf("no keyring item: %v, want ErrKeyMissing", err)
	}
}

func newStoreWith(t *testing.T, ring Keyring) *Store { return newStore(t, ModeKeyring, ring) }

func TestCorruptedFilesFailCleanly(t *testing.T) {
	s := newStore(t, ModeFile, nil)
	if err := s.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(s.Path(server))
	var env map[string]any
	_ = json.Unmarshal(good, &env)
	edit := func(k string, v any) []byte {
		m := map[string]any{}
		for a, b := range env {
			m[a] = b
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	e, _ := ParseEnvelope(good)
	flipped := bytes.Clone(e.Ciphertext)
	flipped[len(flipped)/2] ^= 1
	tests := map[string][]byte{
		"empty":              {},
		"garbage":            []byte("not json \x00\xff"),
		"truncated":          good[:len(good)/2],
		"ciphertext flipped": edit("ciphertext", flipped),
		"nonce changed":      edit("nonce", make([]byte, 12)),
		"short nonce":        edit("nonce", []byte{1, 2}),
		"server changed":     edit("server", "https://evil.example.com"),
		"unknown algorithm":  edit("alg", "A128CBC"),
		"unknown format":     edit("edgeguard_credentials", 2),
		"wrong type":         edit("key_id", 12),
		"unknown field":      edit("plaintext", "x"),
		"huge":               append(bytes.Repeat([]byte(" "), MaxFileBytes), good...),
		"null":               []byte("null"),
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(s.Path(server), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := s.Load(server)
			if c != nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load: %v, %v; want ErrCorrupt", c, err)
			}
			if strings.Contains(err.Error(), accessToken[:20]) {
				t.Fatal("the error carries the token")
			}
		})
	}
	// A file copied to another server's name does not decrypt there (the
	// server URL is the additional data).
	other := "https://other.example.com"
	_ = os.WriteFile(s.Path(other), good, 0o600)
	ok, _ := os.ReadFile(s.KeyPath(server))
	_ = os.WriteFile(s.KeyPath(other), ok, 0o600)
	if _, err := s.Load(other); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a file moved to another server: %v, want ErrCorrupt", err)
	}
	e.Server = other
	if _, err := Open(e, other, mustKey(t, s)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("the envelope's server rewritten: %v, want ErrCorrupt (AAD)", err)
	}
}

func mustKey(t *testing.T, s *Store) []byte {
	ks, err := s.readKeys(server, StoreFile)
	if err != nil {
		t.Fatal(err)
	}
	return ks.Keys[0].Key
}

func TestKeyFileReadableByOthersIsRefused(t *testing.T) {
	s := newStore(t, ModeFile, nil)
	if err := s.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.KeyPath(server), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(server); !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load with a 0644 key file: %v", err)
	}
	_ = os.Chmod(s.KeyPath(server), 0o600)
	for _, bad := range [][]byte{[]byte(`{"v":1,"keys":[]}`), []byte(`{"v":1,"keys":[{"id":"0000000000000000","key":"AAAA"}]}`), []byte("x")} {
		_ = os.WriteFile(s.KeyPath(server), bad, 0o600)
		if _, err := s.Load(server); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a damaged key file %q: %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestRotateKeyReencrypts(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode Mode
		ring Keyring
	}{{"file", ModeFile, nil}, {"keyring", ModeKeyring, &MemoryKeyring{}}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.mode, tc.ring)
			if err := s.Save(creds(server)); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(s.Path(server))
			eb, _ := ParseEnvelope(before)
			oldKey := func() []byte {
				ks, _ := s.readKeys(server, eb.KeyStore)
				return ks.Keys[0].Key
			}()
			r, err := s.RotateKey(server)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := os.ReadFile(s.Path(server))
			ea, _ := ParseEnvelope(after)
			if r.OldKeyID != eb.KeyID || r.NewKeyID != ea.KeyID || r.OldKeyID == r.NewKeyID || bytes.Equal(ea.Ciphertext, eb.Ciphertext) {
				t.Fatalf("rotation %+v: file key %s → %s", r, eb.KeyID, ea.KeyID)
			}
			c, err := s.Load(server)
			if err != nil || c.AccessToken != Secret(accessToken) {
				t.Fatalf("after rotation: %v", err)
			}
			// The old key is gone from the store, and no longer opens the file.
			ks, _ := s.readKeys(server, ea.KeyStore)
			if len(ks.Keys) != 1 || ks.find(r.OldKeyID) != nil {
				t.Errorf("old key still stored: %v", ks.ids())
			}
			if _, err := Open(ea, server, oldKey); !errors.Is(err, ErrWrongKey) {
				t.Errorf("old key on the new file: %v", err)
			}
		})
	}
}

func TestRotationCrashLeavesALoadableFile(t *testing.T) {
	// The state after RotateKey's first step (both keys stored, file still
	// under the old key) and after its second (file under the new key, both
	// keys stored) both load.
	s := newStore(t, ModeFile, nil)
	if err := s.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	old, _ := s.readKeys(server, StoreFile)
	nk, _ := s.newKey()
	if err := s.writeKeys(server, StoreFile, keySet{V: 1, Keys: []dataKey{nk, old.Keys[0]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(server); err != nil {
		t.Fatalf("after step 1: %v", err)
	}
	if err := s.Save(creds(server)); err != nil { // writes under the current (new) key
		t.Fatal(err)
	}
	if _, err := s.Load(server); err != nil {
		t.Fatalf("after step 2: %v", err)
	}
}

func TestDeleteRemovesFileAndKey(t *testing.T) {
	ring := &MemoryKeyring{}
	s := newStore(t, ModeAuto, ring)
	if err := s.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(server); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(server); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Delete: %v", err)
	}
	svc, user := KeyringItem(server)
	if _, err := ring.Get(svc, user); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("keyring item after Delete: %v", err)
	}
	if err := s.Delete(server); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestModeKeyringWithoutKeyringFails(t *testing.T) {
	s := newStore(t, ModeKeyring, &MemoryKeyring{Fail: errors.New("locked")})
	if err := s.Save(creds(server)); err == nil {
		t.Fatal("EDGEGUARD_KEYRING=keyring stored a key although the keyring fails")
	}
	if _, err := os.Stat(s.KeyPath(server)); !os.IsNotExist(err) {
		t.Error("a key file was written in keyring mode")
	}
}

func TestSystemKeyringIsDetectedAbsentFast(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		t.Skip("Linux/BSD secret-service detection")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // no bus socket there
	start := time.Now()
	_, err := SystemKeyring()
	if !errors.Is(err, ErrKeyringUnavailable) || !strings.Contains(err.Error(), "D-Bus") {
		t.Fatalf("SystemKeyring without a session bus: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("detection took %s", d)
	}
	// And the store falls back to the key file, saying why.
	s, _ := New(Options{Dir: filepath.Join(t.TempDir(), "eg")})
	if err := s.Save(creds(server)); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Inspect(server)
	if in.KeyStore != StoreFile || in.KeyringAvailable || !strings.Contains(in.KeyringReason, "D-Bus") {
		t.Errorf("Inspect: %+v", in)
	}
}

func TestDefaultServer(t *testing.T) {
	s := newStore(t, ModeFile, nil)
	if d, err := s.DefaultServer(); d != "" || err != nil {
		t.Fatalf("fresh: %q %v", d, err)
	}
	if err := s.SetDefaultServer(server); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DefaultServer(); d != server {
		t.Fatalf("got %q", d)
	}
	_ = s.ClearDefaultServer("https://other")
	if d, _ := s.DefaultServer(); d != server {
		t.Fatal("cleared for another server")
	}
	_ = s.ClearDefaultServer(server)
	if d, _ := s.DefaultServer(); d != "" {
		t.Fatal("not cleared")
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := creds(server)
	for _, s := range []string{c.AccessToken.String(), c.RefreshToken.GoString()} {
		if s != "[redacted]" {
			t.Fatalf("Secret prints %q", s)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "file": ModeFile, "keyring": ModeKeyring} {
		if m, err := ParseMode(in); err != nil || m != want {
			t.Errorf("%q: %v %v", in, m, err)
		}
	}
	if _, err := ParseMode("vault"); err == nil {
		t.Error("unknown mode accepted")
	}
}

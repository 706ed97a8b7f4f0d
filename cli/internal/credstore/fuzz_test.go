package credstore

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzReadCredentialFile feeds any bytes to the credential-file reader
// (Decode: ParseEnvelope then Open) with the right key: it never panics,
// every failure is ErrCorrupt or ErrWrongKey, and only an authentic file
// (sealed with this key for this server) decrypts.
func FuzzReadCredentialFile(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	good, err := Seal(rand.Reader, server, StoreFile, key, creds(server))
	if err != nil {
		f.Fatal(err)
	}
	var env map[string]any
	_ = json.Unmarshal(good, &env)
	edit := func(k string, v any) []byte {
		m := map[string]any{}
		for a, b := range env {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	e, _ := ParseEnvelope(good)
	flipped := bytes.Clone(e.Ciphertext)
	flipped[0] ^= 0x80
	otherKey, _ := Seal(rand.Reader, server, StoreFile, bytes.Repeat([]byte{8}, 32), creds(server))
	otherServer, _ := Seal(rand.Reader, "https://other.example.com", StoreFile, key, creds("https://other.example.com"))
	seeds := [][]byte{
		good, good[:len(good)-2], good[:40], otherKey, otherServer,
		edit("ciphertext", flipped), edit("ciphertext", e.Ciphertext[:15]), edit("ciphertext", nil),
		edit("nonce", make([]byte, 12)), edit("nonce", make([]byte, 13)), edit("nonce", "!!not base64!!"),
		edit("key_id", "../../../../etc/passwd"), edit("key_id", 1), edit("key_store", "vault"),
		edit("edgeguard_credentials", 1e300), edit("edgeguard_credentials", -1), edit("alg", nil),
		edit("server", "https://edge.example.com/"), edit("extra", map[string]any{"a": 1}),
		{}, []byte("null"), []byte("[]"), []byte(`{"edgeguard_credentials":1}`), []byte("{}{}"),
		bytes.Repeat([]byte("["), 10000), []byte("\xef\xbb\xbf{}"), []byte(`{"ciphertext":"` + string(bytes.Repeat([]byte("A"), 5000)) + `"}`),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Decode(raw, server, key)
		if err != nil {
			if c != nil {
				t.Fatal("credentials returned with an error")
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongKey) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrWrongKey", err)
			}
			return
		}
		// Only an authentic envelope decrypts: its ciphertext must be the one
		// sealed under key (GCM's tag), so the content is what was stored.
		if c.AccessToken != Secret(accessToken) || c.Server != server {
			t.Fatalf("decrypted something that was not sealed: %+v", c)
		}
	})
}

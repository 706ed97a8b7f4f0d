package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, MinPepperBytes) }

func TestHashIsHMACSHA256OfTheWholeKeyUnderTheCurrentPepper(t *testing.T) {
	k := mustGenerate(t, EnvLive)
	p, err := NewPeppers(Pepper{ID: "p2", Secret: secret('b')}, Pepper{ID: "p1", Secret: secret('a')})
	if err != nil {
		t.Fatal(err)
	}
	mac, id := p.Hash(k)
	m := hmac.New(sha256.New, secret('b'))
	m.Write([]byte(k.Secret()))
	if id != "p2" || !bytes.Equal(mac, m.Sum(nil)) {
		t.Fatalf("Hash = %x under %q", mac, id)
	}
	if sum := sha256.Sum256([]byte(k.Secret())); bytes.Equal(mac, sum[:]) {
		t.Fatal("stored form is a plain SHA-256")
	}
}

func TestVerifyAcrossPepperRotation(t *testing.T) {
	k := mustGenerate(t, EnvLive)
	other := mustGenerate(t, EnvLive)
	old, err := NewPeppers(Pepper{ID: "2024", Secret: secret('a')})
	if err != nil {
		t.Fatal(err)
	}
	oldMAC, oldID := old.Hash(k)
	rotated, err := NewPeppers(Pepper{ID: "2025", Secret: secret('b')}, Pepper{ID: "2024", Secret: secret('a')})
	if err != nil {
		t.Fatal(err)
	}
	newMAC, newID := rotated.Hash(k)
	tests := []struct {
		name       string
		p          *Peppers
		k          Key
		id         string
		mac        []byte
		ok, rehash bool
	}{
		{"old hash, old pepper still current", old, k, oldID, oldMAC, true, false},
		{"old hash after rotation: valid, re-hash", rotated, k, oldID, oldMAC, true, true},
		{"new hash after rotation", rotated, k, newID, newMAC, true, false},
		{"old hash under the wrong id", rotated, k, newID, oldMAC, false, false},
		{"unknown pepper id", rotated, k, "1999", oldMAC, false, false},
		{"pepper retired", &Peppers{current: rotated.current}, k, oldID, oldMAC, false, false},
		{"another key", rotated, other, newID, newMAC, false, false},
		{"truncated mac", rotated, k, newID, newMAC[:16], false, false},
		{"empty mac", rotated, k, newID, nil, false, false},
		{"zero key", rotated, Key{}, newID, newMAC, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash := tt.p.Verify(tt.k, tt.id, tt.mac)
			if ok != tt.ok || rehash != tt.rehash {
				t.Fatalf("Verify = %t, %t; want %t, %t", ok, rehash, tt.ok, tt.rehash)
			}
		})
	}
}

func TestNewPeppersRejectsWeakOrAmbiguousPeppers(t *testing.T) {
	tests := []struct {
		name string
		cur  Pepper
		prev []Pepper
	}{
		{"short secret", Pepper{ID: "a", Secret: secret('a')[:31]}, nil},
		{"no secret", Pepper{ID: "a"}, nil},
		{"no id", Pepper{Secret: secret('a')}, nil},
		{"id with a space", Pepper{ID: "a b", Secret: secret('a')}, nil},
		{"id too long", Pepper{ID: strings.Repeat("a", 33), Secret: secret('a')}, nil},
		{"duplicate id", Pepper{ID: "a", Secret: secret('a')}, []Pepper{{ID: "a", Secret: secret('b')}}},
		{"same secret twice", Pepper{ID: "a", Secret: secret('a')}, []Pepper{{ID: "b", Secret: secret('a')}}},
		{"short previous", Pepper{ID: "a", Secret: secret('a')}, []Pepper{{ID: "b", Secret: []byte("short")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPeppers(tt.cur, tt.prev...)
			if !errors.Is(err, ErrInvalidPepper) {
				t.Fatalf("err = %v", err)
			}
			for _, p := range append([]Pepper{tt.cur}, tt.prev...) {
				if len(p.Secret) > 0 && strings.Contains(err.Error(), string(p.Secret)) {
					t.Fatal("error carries a secret")
				}
			}
		})
	}
}

func TestPeppersCopyTheirSecrets(t *testing.T) {
	s := secret('a')
	p, err := NewPeppers(Pepper{ID: "a", Secret: s})
	if err != nil {
		t.Fatal(err)
	}
	k := mustGenerate(t, "")
	mac, id := p.Hash(k)
	for i := range s {
		s[i] = 0 // the caller wipes its copy
	}
	if ok, _ := p.Verify(k, id, mac); !ok {
		t.Fatal("peppers share the caller's buffer")
	}
}

func TestPeppersNeverPrintTheirSecrets(t *testing.T) {
	sec := []byte("pepper-secret-0123456789-abcdefghijklmnop")
	pep := Pepper{ID: "2025-06", Secret: sec}
	p, err := NewPeppers(pep, Pepper{ID: "2024", Secret: secret('z')})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		out = append(out, fmt.Sprintf(f, p), fmt.Sprintf(f, pep), fmt.Sprintf(f, &pep))
	}
	for _, v := range []any{p, pep} {
		b, _ := json.Marshal(v)
		out = append(out, string(b))
	}
	var buf bytes.Buffer
	zl := zerolog.New(&buf)
	zl.Info().Object("peppers", p).Object("pepper", pep).Interface("p", p).Msg("m")
	out = append(out, buf.String())
	for _, s := range out {
		for _, enc := range []string{string(sec), hex.EncodeToString(sec), base64.StdEncoding.EncodeToString(sec), fmt.Sprint(sec), string(secret('z'))} {
			if strings.Contains(s, enc) {
				t.Fatalf("printed form reveals a pepper: %s", s)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(p), "2025-06") {
		t.Fatal("ids not shown")
	}
}

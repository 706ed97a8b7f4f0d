package apikey

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// withChecksum appends the right checksum to body.
func withChecksum(body string) string {
	var sum [ChecksumLen]byte
	encodeChecksum(&sum, crc32.ChecksumIEEE([]byte(body)))
	return body + string(sum[:])
}

const random32 = "AbCd1234efGH5678ijKL9012mnOP3456"

// pad fills s up to the length of a tagged key.
func pad(s string) string { return s + strings.Repeat("a", max(0, MaxLen-len(s))) }

func TestParseAcceptsWellFormedKeysAndRejectsEverythingElse(t *testing.T) {
	live := withChecksum("sk_live_" + random32)
	test := withChecksum("sk_test_" + random32)
	bare := withChecksum("sk_" + random32)
	flip := func(s string, i int) string { // change one character, keep base62
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name string
		in   string
		want error // nil: accepted
	}{
		{"live key", live, nil},
		{"test key", test, nil},
		{"untagged key", bare, nil},
		{"empty", "", ErrLength},
		{"prefix only", "sk_", ErrLength},
		{"wrong prefix", "pk" + live[2:], ErrPrefix},
		{"upper-case prefix", "SK" + live[2:], ErrPrefix},
		{"no prefix, right length", live[3:] + "abc", ErrPrefix},
		{"bearer scheme left in", "Bearer " + live, ErrPrefix},
		{"long non-key", strings.Repeat("x", 100), ErrPrefix},
		{"10 kB of key-looking input", "sk_live_" + strings.Repeat("A", 10<<10), ErrLength},
		{"one character short", live[:len(live)-1], ErrLength},
		{"one character long", live + "A", ErrLength},
		{"unknown environment tag", withChecksum("sk_prod_" + random32), ErrLength},
		{"environment tag without separator", withChecksum("sk_live" + random32[:31]), ErrLength},
		{"tag of an untagged-length key", withChecksum("sk_live_" + random32[:27]), ErrLength},
		{"wrong checksum", flip(live, len(live)-1), ErrChecksum},
		{"one random character changed", flip(live, 10), ErrChecksum},
		{"tag changed (checksum covers it)", "sk_test_" + live[8:], ErrChecksum},
		{"underscore in random part", withChecksum("sk_live_" + random32[:31] + "_"), ErrCharset},
		{"dash in random part", withChecksum("sk_live_" + "-" + random32[1:]), ErrCharset},
		{"trailing space", live[:len(live)-1] + " ", ErrCharset},
		{"trailing newline", live[:len(live)-1] + "\n", ErrCharset},
		{"NUL byte", live[:20] + "\x00" + live[21:], ErrCharset},
		{"unicode homoglyph (Cyrillic А, 2 bytes)", "sk_live_" + "\u0410" + random32[2:] + live[len(live)-6:], ErrCharset},
		{"unicode that keeps the length", "sk_live_é" + random32[2:] + live[len(live)-6:], ErrCharset},
		{"SQL injection", pad("sk_live_' OR '1'='1' --"), ErrCharset},
		{"SQL injection, short", "sk_live_'; DROP TABLE api_keys; --", ErrLength},
		{"JSON injection", pad(`sk_live_","admin":true,"x":"`), ErrCharset},
		{"path traversal", pad("sk_live_../../../../etc/passwd"), ErrCharset},
		{"percent-encoded", "sk_live_%41" + random32[3:] + live[len(live)-6:], ErrCharset},
		{"JWT instead of a key", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", ErrPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse(tt.in)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if k.Secret() != tt.in {
					t.Fatal("Secret is not the input")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
			if !k.IsZero() {
				t.Fatal("rejected input returned a non-zero Key")
			}
			wantReason := ReasonMalformed
			if tt.want == ErrChecksum {
				wantReason = ReasonChecksum
			}
			if ReasonOf(err) != wantReason || !errors.Is(err, wantReason) {
				t.Fatalf("reason = %q, want %q", ReasonOf(err), wantReason)
			}
			if strings.Contains(err.Error(), tt.in) && tt.in != "" {
				t.Fatal("error message echoes the input")
			}
		})
	}
}

func TestKeyParts(t *testing.T) {
	for _, tt := range []struct {
		in, env, kid, str string
	}{
		{withChecksum("sk_live_" + random32), "live", "AbCd1234", "sk_live_AbCd1234…"},
		{withChecksum("sk_test_" + random32), "test", "AbCd1234", "sk_test_AbCd1234…"},
		{withChecksum("sk_" + random32), "", "AbCd1234", "sk_AbCd1234…"},
	} {
		k, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if k.Env() != tt.env || k.KID() != tt.kid || k.String() != tt.str || k.Last4() != tt.in[len(tt.in)-4:] {
			t.Errorf("%s: env=%q kid=%q str=%q last4=%q", tt.str, k.Env(), k.KID(), k.String(), k.Last4())
		}
	}
	var zero Key
	if zero.KID() != "" || zero.Last4() != "" || zero.Env() != "" || zero.Secret() != "" || !zero.IsZero() || zero.String() != "sk_(none)" {
		t.Fatal("zero Key is not empty")
	}
}

func TestGenerateMakesParsableUniformKeys(t *testing.T) {
	counts := map[byte]int{}
	seen := map[string]bool{}
	for i := range 3000 {
		env := []string{"", EnvLive, EnvTest}[i%3]
		k, err := Generate(env)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(k.Secret())
		if err != nil {
			t.Fatalf("generated key does not parse: %v", err)
		}
		if p.Env() != env || p.KID() != k.KID() || !p.Equal(k) {
			t.Fatal("parsed key differs from generated")
		}
		if seen[k.Secret()] {
			t.Fatal("duplicate key")
		}
		seen[k.Secret()] = true
		r := k.Secret()[k.off : int(k.n)-ChecksumLen]
		for j := 0; j < len(r); j++ {
			counts[r[j]]++
		}
	}
	// 96000 characters over 62 symbols: ~1548 each; a modulo bias (256 mod
	// 62) would give the first 8 symbols ~25 % more.
	if len(counts) != 62 {
		t.Fatalf("%d distinct characters, want 62", len(counts))
	}
	for c, n := range counts {
		if n < 1300 || n > 1800 {
			t.Errorf("character %q appears %d times (expected ~1548)", c, n)
		}
	}
	if _, err := Generate("prod"); !errors.Is(err, ErrInvalidEnv) {
		t.Fatalf("Generate(prod) = %v", err)
	}
}

func TestGenerateWithDeterministicRandomness(t *testing.T) {
	// Bytes ≥ 248 are skipped; the rest map mod 62.
	src := bytes.Repeat([]byte{0, 255, 61, 62, 247, 248}, 64)
	k, err := generate(bytes.NewReader(src), EnvLive)
	if err != nil {
		t.Fatal(err)
	}
	want := withChecksum("sk_live_" + strings.Repeat("0z0z", 8))
	if k.Secret() != want {
		t.Fatalf("got %s, want %s", k.Secret(), want)
	}
	if _, err := generate(bytes.NewReader(nil), ""); err == nil {
		t.Fatal("exhausted randomness did not fail")
	}
}

func TestCRCStringMatchesStandardLibrary(t *testing.T) {
	for _, s := range []string{"", "sk_", "sk_live_" + random32, strings.Repeat("\xff", 100)} {
		if crcString(s) != crc32.ChecksumIEEE([]byte(s)) {
			t.Fatalf("crcString(%q) differs", s)
		}
	}
	for n := range 80 {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		if crcString(string(b)) != crc32.ChecksumIEEE(b) {
			t.Fatalf("crcString differs at length %d", n)
		}
	}
	var sum [ChecksumLen]byte
	encodeChecksum(&sum, 0)
	if string(sum[:]) != "000000" {
		t.Fatal(string(sum[:]))
	}
	encodeChecksum(&sum, ^uint32(0)) // 4294967295 = 4·62^5 + …
	if string(sum[:]) != "4gfFC3" {
		t.Fatalf("max checksum = %s", sum)
	}
}

// holder has a Key in an unexported field: fmt cannot call its methods
// there and prints fields by reflection.
type holder struct {
	key  Key
	Key  Key
	name string
}

func TestKeyNeverPrintsItsSecret(t *testing.T) {
	k := mustGenerate(t, EnvLive)
	secret := k.Secret()
	random := secret[k.off+KIDLen : int(k.n)-ChecksumLen] // the part after the public id
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.40s", "%p"} {
		out = append(out, fmt.Sprintf(f, k), fmt.Sprintf(f, &k))
		out = append(out, fmt.Sprintf(f, holder{key: k, Key: k, name: "n"}), fmt.Sprintf(f, &holder{key: k, Key: k}))
		out = append(out, fmt.Sprintf(f, []Key{k}), fmt.Sprintf(f, map[string]Key{"a": k}))
	}
	out = append(out, fmt.Sprint(k), fmt.Sprintln(k), k.String(), k.GoString())
	for _, v := range []any{k, &k, holder{key: k, Key: k}, []Key{k}, map[string]Key{"a": k}, map[Key]int{k: 1}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if b, err := xml.Marshal(struct{ K Key }{k}); err == nil {
		out = append(out, string(b))
	}
	var buf bytes.Buffer
	zl := zerolog.New(&buf)
	zl.Info().Object("key", k).Interface("any", k).Stringer("str", k).Interface("holder", holder{key: k, Key: k}).Msg("m")
	out = append(out, buf.String())
	buf.Reset()
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "key", k, "holder", holder{key: k, Key: k})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "key", k)
	out = append(out, buf.String())
	for _, s := range out {
		if strings.Contains(s, secret) || strings.Contains(s, random) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
			t.Fatalf("printed form reveals the key: %s", s)
		}
	}
	if !strings.Contains(out[0], k.KID()) {
		t.Fatalf("%%v does not show the key id: %s", out[0])
	}
}

func BenchmarkParse(b *testing.B) {
	k, err := Generate(EnvLive)
	if err != nil {
		b.Fatal(err)
	}
	s := k.Secret()
	garbage := "sk_live_" + strings.Repeat("A", 38)
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bad_checksum", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(garbage); err == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("10kB", func(b *testing.B) {
		big := strings.Repeat("x", 10<<10)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Parse(big); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

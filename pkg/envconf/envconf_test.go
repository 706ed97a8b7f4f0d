package envconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const real = "k3H9qvXz0pL2mN8rT5wY7aB4cD6eF1gJ"

func loader(env map[string]string, files map[string]string, strict bool) *Loader {
	return &Loader{
		Getenv: func(k string) string { return env[k] },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		},
		Strict: strict,
	}
}

func TestSecretRefusals(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		files  map[string]string
		strict bool
		opts   SecretOpts
		want   string // error substring; "" = ok
	}{
		{"file", map[string]string{"S_FILE": "/s"}, map[string]string{"/s": real + "\n"}, true, SecretOpts{MinLen: 32, Required: true}, ""},
		{"missing required", nil, nil, true, SecretOpts{Required: true}, "S_FILE: required"},
		{"missing optional", nil, nil, true, SecretOpts{}, ""},
		{"unreadable file", map[string]string{"S_FILE": "/nope"}, nil, true, SecretOpts{}, "cannot read /nope"},
		{"empty file", map[string]string{"S_FILE": "/s"}, map[string]string{"/s": "\n"}, true, SecretOpts{}, "is empty"},
		{"inline in strict", map[string]string{"S": real}, nil, true, SecretOpts{}, "accepted only with STRICT=false"},
		{"inline outside strict", map[string]string{"S": real}, nil, false, SecretOpts{}, ""},
		{"inline ok", map[string]string{"S": "postgres://u:p@h/db"}, nil, true, SecretOpts{InlineOK: true}, ""},
		{"short in strict", map[string]string{"S_FILE": "/s"}, map[string]string{"/s": "abc"}, true, SecretOpts{MinLen: 32}, "at least 32"},
		{"short outside strict", map[string]string{"S": "abc"}, nil, false, SecretOpts{MinLen: 32}, ""},
		{"always min len", map[string]string{"S": "abc"}, nil, false, SecretOpts{MinLen: 32, AlwaysMinLen: true}, "at least 32"},
		{"placeholder", map[string]string{"S_FILE": "/s"}, map[string]string{"/s": "changeme"}, true, SecretOpts{}, "placeholder"},
		{"repeated char", map[string]string{"S_FILE": "/s"}, map[string]string{"/s": strings.Repeat("a", 40)}, true, SecretOpts{}, "placeholder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := loader(tc.env, tc.files, tc.strict).Secret("S", tc.opts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q (value %v)", err, tc.want, v)
			}
			for _, s := range []string{real, "changeme", "abc"} {
				if strings.Contains(err.Error(), s) {
					t.Fatal("the error carries the value")
				}
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(real)
	b, _ := json.Marshal(map[string]any{"s": s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(b)} {
		if strings.Contains(out, real) {
			t.Fatalf("printed: %s", out)
		}
	}
}

func TestPlainValues(t *testing.T) {
	l := loader(map[string]string{"N": " 7 ", "B": "true", "L": "a, ,b", "D": "90s", "BAD": "x"}, nil, true)
	if n, err := l.Int("N", 1, 0, 10); n != 7 || err != nil {
		t.Fatal(n, err)
	}
	if _, err := l.Int("BAD", 1, 0, 10); err == nil {
		t.Fatal("bad int")
	}
	if _, err := l.Int("N", 1, 8, 10); err == nil {
		t.Fatal("out of range")
	}
	if b, err := l.Bool("B", false); !b || err != nil {
		t.Fatal(b, err)
	}
	if _, err := l.Bool("BAD", false); err == nil {
		t.Fatal("bad bool")
	}
	if got := l.List("L", nil); len(got) != 2 || got[1] != "b" {
		t.Fatal(got)
	}
	if got := l.List("NONE", []string{"d"}); got[0] != "d" {
		t.Fatal(got)
	}
	if d, err := l.Duration("D", 0, time.Second, time.Hour); d != 90*time.Second || err != nil {
		t.Fatal(d, err)
	}
	if l.Str("NONE", "def") != "def" {
		t.Fatal("Str default")
	}
	var _ = errors.New
}

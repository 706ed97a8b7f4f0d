package server_test

import (
	"context"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
)

// The internal token's rotation (config/README.md "Rotation"): the service
// accepts the previous token while INTERNAL_TOKEN_PREVIOUS_FILE holds it,
// picks up the new files without a restart, and refuses the old token once
// the previous file is removed.
func TestInternalTokenRotationGraceWindow(t *testing.T) {
	const (
		t1 = "t1-Hq3Lm8Zp2Rv6Wx9Yc4Bn7Kd1Fg5Js0Ta"
		t2 = "t2-Nw5Qe8Ru1Ty4Ui7Op0As3Df6Gh9Jk2Lz"
	)
	testenv.RecordSecret(t1, t2)
	files := map[string]string{"/run/secrets/internal": t1}
	l := &envconf.Loader{Strict: true, Getenv: func(k string) string {
		return map[string]string{"INTERNAL_TOKEN_FILE": "/run/secrets/internal", "INTERNAL_TOKEN_PREVIOUS_FILE": "/run/secrets/internal_previous"}[k]
	}, ReadFile: func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}}
	// before the rotation: the previous file's path is configured, the
	// file is absent (Kubernetes: the secret has no such key yet)
	cur, err := l.SecretValue("INTERNAL_TOKEN", envconf.SecretOpts{MinLen: 32, Required: true})
	if err != nil {
		t.Fatal(err)
	}
	prev, err := l.SecretValue("INTERNAL_TOKEN_PREVIOUS", envconf.SecretOpts{MinLen: 32, AbsentOK: true})
	if err != nil || prev.Get() != nil {
		t.Fatal(err)
	}
	refresh := func() {
		t.Helper()
		for _, v := range []*secrets.Value{cur, prev} {
			if _, _, err := v.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := newHarness(t, options{token: cur, previous: prev})
	c := h.create(h.token("alice", "user"), `{"name":"k"}`)
	call := func(tok string) int {
		r := serve(h.internal, http.MethodPost, "/internal/api-keys/validate", strings.NewReader(`{"key":"`+c.Key+`"}`),
			map[string]string{"X-Internal-Token": tok})
		return r.status
	}
	steps := []struct {
		name   string
		files  map[string]string // nil value: removed
		t1, t2 int
	}{
		{"before", nil, 200, 401},
		{"step 1: new token current, old one previous", map[string]string{"/run/secrets/internal": t2, "/run/secrets/internal_previous": t1}, 200, 200},
		{"step 3: previous removed, grace window over", map[string]string{"/run/secrets/internal_previous": ""}, 401, 200},
	}
	for _, s := range steps {
		for p, v := range s.files {
			if v == "" {
				delete(files, p)
			} else {
				files[p] = v
			}
		}
		refresh()
		if got1, got2 := call(t1), call(t2); got1 != s.t1 || got2 != s.t2 {
			t.Fatalf("%s: old token %d (want %d), new token %d (want %d)", s.name, got1, s.t1, got2, s.t2)
		}
	}
}

// TokenMatches accepts exactly the configured tokens: never a prefix, an
// extension, a case variant, an empty header or anything when no token is
// set.
func FuzzTokenMatches(f *testing.F) {
	const cur, prev = "t2-Nw5Qe8Ru1Ty4Ui7Op0As3Df6Gh9Jk2Lz", "t1-Hq3Lm8Zp2Rv6Wx9Yc4Bn7Kd1Fg5Js0Ta"
	for _, s := range []string{cur, prev, "", cur[:10], cur + "x", strings.ToUpper(cur), cur + "\x00", " " + cur,
		cur + "," + prev, strings.Repeat("A", 1<<16), "\r\n", prev[:len(prev)-1]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, got string) {
		want := got == cur || got == prev
		if server.TokenMatches([]byte(got), []byte(cur), []byte(prev)) != want {
			t.Fatalf("TokenMatches(%q) != %v", got, want)
		}
		if server.TokenMatches([]byte(got), []byte(cur), nil) != (got == cur) {
			t.Fatalf("with no previous token: TokenMatches(%q)", got)
		}
		if server.TokenMatches([]byte(got)) || server.TokenMatches([]byte(got), nil, []byte{}) {
			t.Fatal("matched with no token set")
		}
	})
}

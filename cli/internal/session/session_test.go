package session

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/pkg/apikey"
)

func TestCanonicalServer(t *testing.T) {
	for in, want := range map[string]string{
		"https://Edge.Example.com/":       "https://edge.example.com",
		"https://edge.example.com:443":    "https://edge.example.com",
		"http://127.0.0.1:80/":            "http://127.0.0.1",
		"http://localhost:8000//":         "http://localhost:8000",
		"https://edge.example.com/kc/":    "https://edge.example.com/kc",
		" https://edge.example.com ":      "https://edge.example.com",
		"HTTPS://edge.example.com:8443/x": "https://edge.example.com:8443/x",
	} {
		got, err := CanonicalServer(in, false)
		if err != nil || got != want {
			t.Errorf("CanonicalServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "edge.example.com", "ftp://x", "http://edge.example.com", "https://u:p@x", "https://x/?a=1", "https://x/#f"} {
		if got, err := CanonicalServer(bad, false); err == nil {
			t.Errorf("CanonicalServer(%q) = %q, want an error", bad, got)
		}
	}
	if _, err := CanonicalServer("http://edge.example.com", true); err != nil {
		t.Errorf("allowHTTP: %v", err)
	}
}

func env(t *testing.T, vars map[string]string) *Env {
	s, err := credstore.New(credstore.Options{Dir: filepath.Join(t.TempDir(), "eg"), Mode: credstore.ModeFile})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Store: s, Getenv: func(k string) string { return vars[k] }}
}

func TestResolveOrder(t *testing.T) {
	const server = "https://edge.example.com"
	flagKey, _ := apikey.Generate("live")
	envKey, _ := apikey.Generate("test")
	logged := func(e *Env) {
		if err := e.Store.Save(&credstore.Credentials{Server: server, AccessToken: "jwt-access", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	both := Accepts{JWT: true, APIKey: true}
	jwtOnly := Accepts{JWT: true}

	e := env(t, map[string]string{EnvAPIKey: envKey.Secret()})
	logged(e)
	tests := []struct {
		name    string
		flag    string
		accepts Accepts
		kind    Kind
		source  string
		value   string
		ignored bool
		err     error
	}{
		{"flag first", flagKey.Secret(), both, KindAPIKey, "flag", flagKey.Secret(), false, nil},
		{"then the environment", "", both, KindAPIKey, "env", envKey.Secret(), false, nil},
		{"JWT-only target: environment key skipped", "", jwtOnly, KindJWT, "stored", "jwt-access", true, nil},
		{"JWT-only target: a flag key is refused", flagKey.Secret(), jwtOnly, "", "", "", false, ErrAPIKeyNotAccepted},
		{"malformed key", "sk_live_nope", both, "", "", "", false, ErrBadAPIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.Resolve(ctx, server, tt.flag, tt.accepts)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || c.Kind != tt.kind || c.Source != tt.source || string(c.Value) != tt.value || (c.Ignored != "") != tt.ignored {
				t.Fatalf("got %+v, %v", c, err)
			}
			if c.Kind == KindAPIKey && c.KID == "" {
				t.Error("no key id")
			}
		})
	}
	// Nothing in the environment: the stored login.
	e2 := env(t, nil)
	logged(e2)
	if c, err := e2.Resolve(ctx, server, "", both); err != nil || c.Kind != KindJWT {
		t.Fatalf("stored: %+v %v", c, err)
	}
	if _, err := env(t, nil).Resolve(ctx, server, "", both); !errors.Is(err, ErrNotLoggedIn) {
		t.Fatalf("nothing: %v, want ErrNotLoggedIn", err)
	}
}

func TestServerResolution(t *testing.T) {
	e := env(t, map[string]string{EnvServer: "https://env.example.com/"})
	if s, err := e.Server("https://flag.example.com"); err != nil || s != "https://flag.example.com" {
		t.Errorf("flag: %q %v", s, err)
	}
	if s, err := e.Server(""); err != nil || s != "https://env.example.com" {
		t.Errorf("env: %q %v", s, err)
	}
	e = env(t, nil)
	if _, err := e.Server(""); !errors.Is(err, ErrNoServer) {
		t.Errorf("none: %v", err)
	}
	_ = e.Store.SetDefaultServer("https://last.example.com")
	if s, err := e.Server(""); err != nil || s != "https://last.example.com" {
		t.Errorf("last login: %q %v", s, err)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"alice":             "alice",
		"a\x1b[2Jb":         "a?[2Jb",
		"x\u202ey":          "x?y",
		"\xff":              "?",
		"abcdefghijklmnopq": "abcdefghij…",
	} {
		if got := Sanitize(in, 10); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

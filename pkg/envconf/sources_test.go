package envconf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/secrets"
)

// stub is a backend named "vault" for the loader's tests.
type stub struct {
	values map[string]string
	err    error
}

func (s *stub) Name() string             { return "vault" }
func (s *stub) Where(name string) string { return "not in vault at secret/data/edgeguard/" + name }
func (s *stub) Lookup(_ context.Context, name string) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	if v, ok := s.values[name]; ok {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("%s: %w", name, secrets.ErrNotFound)
}

func TestSecretsSources(t *testing.T) {
	down := fmt.Errorf("vault: %w (read: dial failed)", secrets.ErrUnavailable)
	file := map[string]string{"/s": real}
	tests := []struct {
		name    string
		env     map[string]string
		vault   *stub
		opts    SecretOpts
		want    string // value
		wantErr string // error prefix
	}{
		{"default order: file", map[string]string{"S_FILE": "/s"}, nil, SecretOpts{Required: true}, real, ""},
		{"vault first", map[string]string{"SECRETS_SOURCES": "vault,file", "S_FILE": "/s"}, &stub{values: map[string]string{"S": "v-" + real}}, SecretOpts{Required: true}, "v-" + real, ""},
		{"vault down: the file is the fallback", map[string]string{"SECRETS_SOURCES": "vault,file", "S_FILE": "/s"}, &stub{err: down}, SecretOpts{Required: true}, real, ""},
		{"vault down and no file: refused", map[string]string{"SECRETS_SOURCES": "vault,file"}, &stub{err: down}, SecretOpts{Required: true}, "", "S: secret backend unavailable: vault: secret backend unavailable (read: dial failed); not in vault at secret/data/edgeguard/S, no S_FILE set"},
		{"vault down, optional secret: unset", map[string]string{"SECRETS_SOURCES": "vault,file"}, &stub{err: down}, SecretOpts{}, "", ""},
		{"neither has it", map[string]string{"SECRETS_SOURCES": "vault,file"}, &stub{}, SecretOpts{Required: true}, "", "S_FILE: required (not in vault at secret/data/edgeguard/S, no S_FILE set)"},
		{"short value from vault names the source", map[string]string{"SECRETS_SOURCES": "vault"}, &stub{values: map[string]string{"S": "abc"}}, SecretOpts{MinLen: 32}, "", "S (vault): 3 bytes, at least 32 required"},
		{"placeholder from vault", map[string]string{"SECRETS_SOURCES": "vault"}, &stub{values: map[string]string{"S": "changeme"}}, SecretOpts{}, "", "S (vault): a placeholder"},
		{"env refused in strict mode whatever the order", map[string]string{"SECRETS_SOURCES": "env,file", "S": real, "S_FILE": "/s"}, nil, SecretOpts{}, "", "S: set S_FILE"},
		{"unknown source", map[string]string{"SECRETS_SOURCES": "file,aws"}, nil, SecretOpts{}, "", `SECRETS_SOURCES: "aws" is not a source of this service`},
		{"vault not linked", map[string]string{"SECRETS_SOURCES": "vault"}, nil, SecretOpts{}, "", `SECRETS_SOURCES: "vault" is not a source of this service (file, env)`},
		{"listed twice", map[string]string{"SECRETS_SOURCES": "file,file"}, nil, SecretOpts{}, "", `SECRETS_SOURCES: "file" listed twice`},
		{"bad refresh interval", map[string]string{"SECRETS_REFRESH_INTERVAL": "10ms"}, nil, SecretOpts{}, "", "SECRETS_REFRESH_INTERVAL: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := loader(tc.env, file, true)
			if tc.vault != nil {
				l.Backends = map[string]func(*Loader) (secrets.Backend, error){"vault": func(*Loader) (secrets.Backend, error) { return tc.vault, nil }}
			}
			_, err := l.Service()
			var v Secret
			if err == nil {
				v, err = l.Secret("S", tc.opts)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want prefix %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), real) {
					t.Fatal("the error carries the value")
				}
				return
			}
			if err != nil || string(v) != tc.want {
				t.Fatalf("got %q, %v", v, err)
			}
		})
	}
}

func TestServiceReadsRefreshInterval(t *testing.T) {
	l := loader(map[string]string{"SECRETS_REFRESH_INTERVAL": "0"}, nil, true)
	s, err := l.Service()
	if err != nil || s.SecretsRefresh != 0 || strings.Join(s.Secrets.Backends(), ",") != "file,env" {
		t.Fatal(s, err)
	}
	if s, _ := loader(nil, nil, true).Service(); s.SecretsRefresh.Seconds() != 30 {
		t.Fatal(s.SecretsRefresh)
	}
}

// SecretValue applies the loader's checks at every refresh.
func TestSecretValueRefreshKeepsTheChecks(t *testing.T) {
	files := map[string]string{"/s": real}
	l := loader(map[string]string{"S_FILE": "/s"}, files, true)
	v, err := l.SecretValue("S", SecretOpts{MinLen: 32, Required: true})
	if err != nil || string(v.Get()) != real {
		t.Fatal(err)
	}
	files["/s"] = "changeme-changeme-changeme-changeme"
	if _, _, err := v.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "placeholder") || string(v.Get()) != real {
		t.Fatalf("placeholder accepted on refresh: %v", err)
	}
	next := strings.ToUpper(real)
	files["/s"] = next
	if changed, _, err := v.Refresh(context.Background()); !changed || err != nil || string(v.Get()) != next {
		t.Fatal(changed, err)
	}
	if _, err := l.SecretValue("MISSING", SecretOpts{Required: true}); err == nil {
		t.Fatal("missing required secret accepted")
	}
	opt, err := l.SecretValue("MISSING", SecretOpts{})
	if err != nil || opt.Get() != nil {
		t.Fatal(err)
	}
	var _ = errors.Is
}

package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

// Every strict-mode refusal of a secret, for every secret llm-api reads:
// missing, shorter than its minimum, each placeholder the templates and docs
// show (envconf.DocumentedPlaceholders, parsed from them), inline; and the
// switches and sources around them. Each is one line naming the variable.
func TestStrictModeRefusesEverySecretProblem(t *testing.T) {
	type tc struct {
		name   string
		mutate func(v, f map[string]string)
		want   string // error prefix
	}
	var cases []tc
	for _, s := range []struct {
		name, file string
		min        int
	}{
		{"API_KEY_PEPPER", "/run/secrets/pepper", 32},
		{"INTERNAL_TOKEN", "/run/secrets/internal", 32},
		{"KEYCLOAK_CLIENT_SECRET", "/run/secrets/kc", 16},
		{"GUEST_LOGIN_CLIENT_SECRET", "/run/secrets/guest", 16},
		{"REDIS_PASSWORD", "/run/secrets/redis", 16},
	} {
		cases = append(cases,
			tc{s.name + " missing", func(v, f map[string]string) { delete(v, s.name+"_FILE") }, s.name + "_FILE: required"},
			tc{s.name + " short", func(v, f map[string]string) { f[s.file] = "Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"[:s.min-1] }, fmt.Sprintf("%s_FILE: %d bytes, at least %d", s.name, s.min-1, s.min)},
			tc{s.name + " inline", func(v, f map[string]string) { v[s.name] = f[s.file]; delete(v, s.name+"_FILE") }, s.name + ": set " + s.name + "_FILE"},
		)
		for _, p := range envconf.DocumentedPlaceholders() {
			cases = append(cases, tc{s.name + " placeholder " + p, func(v, f map[string]string) { f[s.file] = p }, s.name + "_FILE: a placeholder"})
		}
	}
	cases = append(cases,
		tc{"auth disabled", func(v, f map[string]string) { v["AUTH_ENABLED"] = "false" }, "AUTH_ENABLED: cannot be false in strict mode"},
		tc{"previous internal token equals the current one", func(v, f map[string]string) { v["INTERNAL_TOKEN_PREVIOUS_FILE"] = "/run/secrets/internal" }, "INTERNAL_TOKEN_PREVIOUS_FILE: must differ"},
		tc{"previous internal token short", func(v, f map[string]string) {
			v["INTERNAL_TOKEN_PREVIOUS_FILE"] = "/run/secrets/prev"
			f["/run/secrets/prev"] = "Zq8Wn2Lp5Rt7Yx1C"
		}, "INTERNAL_TOKEN_PREVIOUS_FILE: 16 bytes, at least 32"},
		tc{"previous internal token placeholder", func(v, f map[string]string) {
			v["INTERNAL_TOKEN_PREVIOUS_FILE"] = "/run/secrets/prev"
			f["/run/secrets/prev"] = "${INTERNAL_TOKEN_PREVIOUS}"
		}, "INTERNAL_TOKEN_PREVIOUS_FILE: a placeholder"},
		tc{"unknown secrets source", func(v, f map[string]string) { v["SECRETS_SOURCES"] = "file,consul" }, `SECRETS_SOURCES: "consul" is not a source`},
		tc{"vault without address", func(v, f map[string]string) { v["SECRETS_SOURCES"] = "vault,file" }, "VAULT_ADDR: required"},
		tc{"vault without credentials", func(v, f map[string]string) {
			v["SECRETS_SOURCES"], v["VAULT_ADDR"] = "vault,file", "http://127.0.0.1:1"
		}, "VAULT_TOKEN_FILE: "},
		tc{"vault unreachable and no file", func(v, f map[string]string) {
			v["SECRETS_SOURCES"], v["VAULT_ADDR"], v["VAULT_TOKEN_FILE"] = "vault,file", "http://127.0.0.1:1", "/run/secrets/vault"
			f["/run/secrets/vault"] = "hvs.Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"
			delete(v, "API_KEY_PEPPER_FILE")
		}, "API_KEY_PEPPER: secret backend unavailable"},
		tc{"bad refresh interval", func(v, f map[string]string) { v["SECRETS_REFRESH_INTERVAL"] = "soon" }, "SECRETS_REFRESH_INTERVAL: "},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, f := env()
			secretsBefore := []string{pepper, token, kcSecret, guestSecret, redisPw}
			c.mutate(v, f)
			_, err := load(v, f)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, c.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q, want one line starting %q", msg, c.want)
			}
			for _, s := range append(secretsBefore, "Zq8Wn2Lp5Rt7Yx1C", "hvs.") {
				if strings.Contains(msg, s) {
					t.Fatalf("error carries a secret: %q", msg)
				}
			}
		})
	}
}

// Vault unreachable: every secret still comes from its file (the fallback).
func TestVaultUnreachableFallsBackToTheFiles(t *testing.T) {
	v, f := env()
	v["SECRETS_SOURCES"], v["VAULT_ADDR"], v["VAULT_TOKEN_FILE"] = "vault,file", "http://127.0.0.1:1", "/run/secrets/vault"
	f["/run/secrets/vault"] = "hvs.Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"
	c, err := load(v, f)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Pepper) != pepper || string(c.InternalToken.Get()) != token || strings.Join(c.Secrets.Backends(), ",") != "vault,file" {
		t.Fatal("secrets not read from the files")
	}
}

package config_test

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

// Every strict-mode refusal of media-api's secret (MEDIA_URL_SIGNING_KEY):
// missing, short, each placeholder the templates and docs show, inline; and
// AUTH_ENABLED=false and the secret sources. One line naming the variable.
func TestStrictModeRefusesEverySecretProblem(t *testing.T) {
	type tc struct {
		name   string
		mutate func(v, f map[string]string)
		want   string
	}
	const file = "/run/secrets/media_url_key"
	cases := []tc{
		{"missing", func(v, f map[string]string) { delete(v, "MEDIA_URL_SIGNING_KEY_FILE") }, "MEDIA_URL_SIGNING_KEY_FILE: required"},
		{"short", func(v, f map[string]string) { f[file] = signingKey[:31] }, "MEDIA_URL_SIGNING_KEY_FILE: 31 bytes, at least 32"},
		{"inline", func(v, f map[string]string) {
			delete(v, "MEDIA_URL_SIGNING_KEY_FILE")
			v["MEDIA_URL_SIGNING_KEY"] = signingKey
		}, "MEDIA_URL_SIGNING_KEY: set MEDIA_URL_SIGNING_KEY_FILE"},
		{"auth disabled", func(v, f map[string]string) { v["AUTH_ENABLED"] = "false" }, "AUTH_ENABLED: cannot be false in strict mode"},
		{"unknown secrets source", func(v, f map[string]string) { v["SECRETS_SOURCES"] = "consul" }, `SECRETS_SOURCES: "consul" is not a source`},
		{"vault without address", func(v, f map[string]string) { v["SECRETS_SOURCES"] = "vault,file" }, "VAULT_ADDR: required"},
		{"vault unreachable and no file", func(v, f map[string]string) {
			v["SECRETS_SOURCES"], v["VAULT_ADDR"], v["VAULT_TOKEN_FILE"] = "vault,file", "http://127.0.0.1:1", "/run/secrets/vault"
			f["/run/secrets/vault"] = "hvs.Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"
			delete(v, "MEDIA_URL_SIGNING_KEY_FILE")
		}, "MEDIA_URL_SIGNING_KEY: secret backend unavailable"},
	}
	for _, p := range envconf.DocumentedPlaceholders() {
		cases = append(cases, tc{"placeholder " + p, func(v, f map[string]string) { f[file] = p }, "MEDIA_URL_SIGNING_KEY_FILE: a placeholder"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, f := env()
			c.mutate(v, f)
			_, err := load(v, f)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, c.want) || strings.Contains(msg, "\n") ||
				strings.Contains(msg, signingKey[:16]) || strings.Contains(msg, "hvs.") {
				t.Fatalf("error %q, want one line starting %q without a secret", msg, c.want)
			}
		})
	}
}

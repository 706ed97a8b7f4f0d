package config

import (
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

// Every strict-mode refusal of mcp-tools' secret (SANDBOX_TOKEN, optional:
// refused when set badly), each placeholder the templates and docs show,
// and the secret sources. mcp-tools has no AUTH_ENABLED switch (identity is
// always required, see TestBadConfigurationIsRefusedWithTheVariableName)
// and no internal token.
func TestStrictModeRefusesEverySecretProblem(t *testing.T) {
	type tc struct {
		name string
		env  map[string]string
		want string
	}
	cases := []tc{
		{"short", base("SANDBOX_TOKEN_FILE", "/run/secrets/sandbox-short"), "SANDBOX_TOKEN_FILE: 3 bytes, at least 16"},
		{"inline", base("SANDBOX_TOKEN", "Zq3v9WmX2kLp8RtY5nB7cD1f"), "SANDBOX_TOKEN: set SANDBOX_TOKEN_FILE"},
		{"unreadable", base("SANDBOX_TOKEN_FILE", "/nope"), "SANDBOX_TOKEN_FILE: cannot read /nope"},
		{"unknown secrets source", base("SECRETS_SOURCES", "consul"), `SECRETS_SOURCES: "consul" is not a source`},
		{"vault without address", base("SECRETS_SOURCES", "vault,file"), "VAULT_ADDR: required"},
		{"vault without credentials", base("SECRETS_SOURCES", "vault,file", "VAULT_ADDR", "http://127.0.0.1:1"), "VAULT_TOKEN_FILE: "},
	}
	for i, p := range envconf.DocumentedPlaceholders() {
		path := "/run/secrets/placeholder-" + string(rune('a'+i))
		files[path] = p
		cases = append(cases, tc{"placeholder " + p, base("SANDBOX_TOKEN_FILE", path), "SANDBOX_TOKEN_FILE: a placeholder"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(c.env)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "Zq3v") {
				t.Fatalf("error %q, want one line starting %q without a secret", msg, c.want)
			}
		})
	}
}

package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// root is the repository root, relative to this package.
const root = "../.."

func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a multi-document YAML file into
// generic maps.
func yamlDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(repoFile(t, rel)))
	var out []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("%s: %v", rel, err)
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

// Generic accessors for decoded YAML.
func m(v any) map[string]any { x, _ := v.(map[string]any); return x }
func l(v any) []any          { x, _ := v.([]any); return x }
func s(v any) string         { x, _ := v.(string); return x }

func path(v any, keys ...string) any {
	for _, k := range keys {
		v = m(v)[k]
	}
	return v
}

func strList(v any) []string {
	var out []string
	for _, e := range l(v) {
		out = append(out, s(e))
	}
	return out
}

// kongConf parses kong/kong.conf: "key = value" lines, # comments.
func kongConf(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(repoFile(t, "kong/kong.conf")))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("kong.conf:%d: not key = value: %q", n, line)
		}
		k = strings.TrimSpace(k)
		if _, dup := out[k]; dup {
			t.Fatalf("kong.conf:%d: %s set twice", n, k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// kongYMLFiles returns every *_file value of the plugin configs in
// kong/kong.yml (the secrets the gateway reads).
func kongYMLFiles(t *testing.T) map[string]bool {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(repoFile(t, "kong/kong.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, sub := range x {
				if strings.HasSuffix(k, "_file") {
					out[s(sub)] = true
				}
				walk(sub)
			}
		case []any:
			for _, sub := range x {
				walk(sub)
			}
		}
	}
	walk(doc)
	if len(out) == 0 {
		t.Fatal("kong.yml has no *_file option")
	}
	return out
}

// kongYMLPluginNames returns the names of every plugin kong/kong.yml
// attaches (globally, to services or to routes).
func kongYMLPluginNames(t *testing.T) map[string]bool {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(repoFile(t, "kong/kong.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, sub := range x {
				if k == "plugins" {
					for _, p := range l(sub) {
						out[s(m(p)["name"])] = true
					}
				}
				walk(sub)
			}
		case []any:
			for _, sub := range x {
				walk(sub)
			}
		}
	}
	walk(doc)
	return out
}

// kongYMLIssuers returns the keycloak-jwt issuers of kong/kong.yml.
func kongYMLIssuers(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*-?\s*issuer:\s*(\S+)\s*$`)
	out := map[string]bool{}
	for _, mm := range re.FindAllStringSubmatch(string(repoFile(t, "kong/kong.yml")), -1) {
		out[mm[1]] = true
	}
	if len(out) == 0 {
		t.Fatal("kong.yml names no issuer")
	}
	return out
}

// kongYMLKeycloakHosts returns the hosts of kong/kong.yml's routes to the
// keycloak service.
func kongYMLKeycloakHosts(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Services []struct {
			Name   string `yaml:"name"`
			Routes []struct {
				Hosts []string `yaml:"hosts"`
			} `yaml:"routes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(repoFile(t, "kong/kong.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range doc.Services {
		if s.Name != "keycloak" {
			continue
		}
		if len(s.Routes) == 0 {
			t.Fatal("kong.yml routes nothing to keycloak")
		}
		for _, r := range s.Routes {
			if len(r.Hosts) == 0 {
				t.Error("a kong.yml route to keycloak has no hosts: Keycloak would build its discovery document from any Host")
			}
			out = append(out, r.Hosts...)
		}
	}
	return out
}

// secretName matches environment variables that would carry a secret value
// (their *_FILE form carries a path instead).
var secretName = regexp.MustCompile(`(PASSWORD|SECRET|TOKEN|PEPPER|PRIVATE_KEY|API_KEY|DATABASE_URL)$`)

// keycloakFlags returns the --name=value flags of a Keycloak command line.
func keycloakFlags(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
			out[k] = v
		}
	}
	return out
}

// kongYMLRedisRecords returns every redis record of kong/kong.yml's plugin
// configs (a mapping with addresses).
func kongYMLRedisRecords(t *testing.T) []map[string]any {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(repoFile(t, "kong/kong.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["addresses"]; ok {
				out = append(out, x)
			}
			for _, sub := range x {
				walk(sub)
			}
		case []any:
			for _, sub := range x {
				walk(sub)
			}
		}
	}
	walk(doc)
	return out
}

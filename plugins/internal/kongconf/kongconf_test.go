package kongconf

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const valid = `
_format_version: "3.0"
services:
- name: llm-api
  url: http://llm-api:8080
  plugins:
  - name: svc-wide
  routes:
  - name: llm-openai
    paths: [/v1/models, /v1/chat/completions]
    strip_path: false
    plugins:
    - name: header-guard
      config:
        max_headers: 100
    - name: keycloak-jwt
      config:
        issuers:
        - issuer: http://localhost:8000/realms/jan
        audiences: [jan-api]
  - name: guest
    paths: [/auth/guest-login]
    methods: [POST, OPTIONS]
    preserve_host: true
    plugins:
    - name: header-guard
      enabled: false
- name: keycloak
  url: http://keycloak:8080
routes:
- name: kc
  service: keycloak
  paths: [/realms/jan/]
plugins:
- name: header-guard
  route: kc
  config:
    max_headers: 50
- name: global-one
`

func TestParseReadsServicesRoutesAndPlugins(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 2 || len(c.Services[0].Routes) != 2 || len(c.Routes) != 1 {
		t.Fatalf("config = %+v", c)
	}
	r := c.Services[0].Routes[0]
	if r.StripPathOrDefault() || !slices.Equal(r.Paths, []string{"/v1/models", "/v1/chat/completions"}) {
		t.Fatalf("route = %+v", r)
	}
	if g := c.Services[0].Routes[1]; !g.StripPathOrDefault() || !g.PreserveHost || !slices.Equal(g.Methods, []string{"POST", "OPTIONS"}) {
		t.Fatalf("guest route = %+v (strip_path defaults to true in Kong)", g)
	}
	if got := c.PluginNames(); !slices.Equal(got, []string{"svc-wide", "header-guard", "keycloak-jwt", "global-one"}) {
		t.Fatalf("PluginNames = %v", got)
	}
}

func TestPluginConfigsTellWhereEachInstanceIsAttached(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	got := c.PluginConfigs("header-guard")
	want := []struct {
		service, route string
		enabled        bool
		maxHeaders     any
	}{
		{"llm-api", "llm-openai", true, 100},
		{"llm-api", "guest", false, nil},
		{"keycloak", "kc", true, 50},
	}
	if len(got) != len(want) {
		t.Fatalf("PluginConfigs = %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.Service != w.service || g.Route != w.route || g.Enabled != w.enabled || g.Config["max_headers"] != w.maxHeaders {
			t.Fatalf("[%d] = %+v, want %+v", i, g, w)
		}
	}
	if svc := c.PluginConfigs("svc-wide"); len(svc) != 1 || svc[0].Service != "llm-api" || svc[0].Route != "" {
		t.Fatalf("service-wide plugin = %+v", svc)
	}
	if glob := c.PluginConfigs("global-one"); len(glob) != 1 || glob[0].Service != "" || glob[0].Route != "" {
		t.Fatalf("global plugin = %+v", glob)
	}
	issuers, _ := c.PluginConfigs("keycloak-jwt")[0].Config["issuers"].([]any)
	if first, _ := issuers[0].(map[string]any); first["issuer"] != "http://localhost:8000/realms/jan" {
		t.Fatalf("nested config = %#v", issuers)
	}
}

func TestInvalidConfigsAreRefusedWithTheReason(t *testing.T) {
	svc := "services:\n- name: s\n  url: http://s:8080\n  routes:\n  - name: r\n    paths: [/a]\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "_format_version: \"3.0\"\nconsumers: []\n", "field consumers not found"},
		{"typo in a route field", "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://s\n  routes:\n  - name: r\n    paths: [/a]\n    strip_paths: false\n", "field strip_paths not found"},
		{"missing format version", svc, `_format_version is ""`},
		{"old format version", "_format_version: \"1.1\"\n" + svc, `_format_version is "1.1"`},
		{"duplicate key", "_format_version: \"3.0\"\n_format_version: \"3.0\"\n", "already defined"},
		{"service without url or host", "_format_version: \"3.0\"\nservices:\n- name: s\n", "neither url nor host"},
		{"relative url", "_format_version: \"3.0\"\nservices:\n- name: s\n  url: s:8080/x\n", "not an absolute http(s) URL"},
		{"duplicate service", "_format_version: \"3.0\"\nservices:\n- {name: s, url: http://s}\n- {name: s, url: http://t}\n", "duplicate service name"},
		{"duplicate route", "_format_version: \"3.0\"\n" + svc + "  - name: r\n    paths: [/b]\n", `duplicate route name "r"`},
		{"route matching nothing", "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://s\n  routes:\n  - name: r\n", "matches nothing"},
		{"relative path", "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://s\n  routes:\n  - name: r\n    paths: [v1]\n", "must start with /"},
		{"lower-case method", "_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://s\n  routes:\n  - name: r\n    methods: [get]\n", "upper case"},
		{"top-level route to unknown service", "_format_version: \"3.0\"\nroutes:\n- name: r\n  service: nope\n  paths: [/a]\n", `service "nope" is not defined`},
		{"plugin on unknown route", "_format_version: \"3.0\"\n" + svc + "plugins:\n- name: p\n  route: nope\n", `route "nope" is not defined`},
		{"plugin without name", "_format_version: \"3.0\"\n" + svc + "plugins:\n- config: {}\n", "plugin without a name"},
		{"plugin attached twice", "_format_version: \"3.0\"\n" + svc + "    plugins:\n    - name: p\nplugins:\n- name: p\n  route: r\n", "attached twice"},
		{"two documents", "_format_version: \"3.0\"\n---\n_format_version: \"3.0\"\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

func TestServiceReferencesMayBeMappings(t *testing.T) {
	c, err := Parse([]byte("_format_version: \"3.0\"\nservices:\n- {name: s, url: http://s}\nroutes:\n- name: r\n  service: {name: s}\n  paths: [/a]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Routes[0].Service != "s" {
		t.Fatalf("service ref = %q", c.Routes[0].Service)
	}
}

func TestRepositoryKongYMLStripsNoPathAndGuardsEveryRoute(t *testing.T) {
	c, err := Load("../../../kong/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	guarded := map[string]bool{}
	for _, ref := range c.PluginConfigs("header-guard") {
		guarded[ref.Route] = ref.Enabled
	}
	for _, ref := range c.PluginConfigs("edgeguard") { // the all-in-one runs header-guard as its first section
		if _, ok := ref.Config["header_guard"].(map[string]any); ok {
			guarded[ref.Route] = ref.Enabled
		}
	}
	for _, s := range c.Services {
		for _, r := range s.Routes {
			if r.StripPathOrDefault() {
				t.Errorf("route %s: strip_path must be false (services serve their public paths)", r.Name)
			}
			if !guarded[r.Name] {
				t.Errorf("route %s has no enabled header-guard", r.Name)
			}
		}
	}
}

func TestLoadReportsAMissingFile(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yml"); err == nil {
		t.Fatal("no error")
	}
}

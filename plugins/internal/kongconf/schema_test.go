package kongconf

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/allinone"
	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakapikey"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

const (
	pluginsRoot = "../.."                  // the plugins module
	kongYML     = "../../../kong/kong.yml" // the repository's declarative config
)

// ourPlugins are edgeguard's Kong plugins and their priorities
// (docs/architecture.md "Kong configuration").
var ourPlugins = []struct {
	name     string
	priority int
	config   func() any // the plugin's config constructor (SchemaOf)
	// rewrite: the plugin runs in the rewrite phase only (global in kong.yml)
	rewrite bool
}{
	{"header-guard", headerguard.Priority, func() any { return headerguard.New() }, false},
	{"keycloak-jwt", keycloakjwt.Priority, keycloakjwt.New, false},
	{"keycloak-apikey", keycloakapikey.Priority, keycloakapikey.New, false},
	{"redis-ratelimit", redisratelimit.Priority, redisratelimit.New, false},
	{"edgeguard", allinone.Priority, allinone.New, false},
	{"client-ip", kongadapter.ClientIPPriority, kongadapter.NewClientIP, true},
}

// TestKongYMLMatchesPluginSchemas builds each of our plugins that exists,
// runs `<plugin> -dump` as Kong does, and checks that every config key
// kong.yml uses for it is in its schema with a compatible type, that its
// priority is docs/architecture.md's, and that it runs in access and never in
// response (Kong would buffer whole bodies and break SSE) — except
// client-ip, which runs in rewrite only and is configured only globally
// (Kong runs only global plugins in the rewrite phase).
func TestKongYMLMatchesPluginSchemas(t *testing.T) {
	c, err := Load(kongYML)
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go toolchain not on PATH: %v", err)
	}
	bin := t.TempDir()
	for _, p := range ourPlugins {
		t.Run(p.name, func(t *testing.T) {
			refs := c.PluginConfigs(p.name)
			if _, err := os.Stat(filepath.Join(pluginsRoot, p.name, "main.go")); err != nil {
				if len(refs) > 0 {
					t.Fatalf("kong.yml uses %s (%d times) but plugins/%s does not exist", p.name, len(refs), p.name)
				}
				t.Skipf("plugins/%s does not exist yet and kong.yml does not use it", p.name)
			}
			info := dumpPlugin(t, goBin, bin, p.name)
			if info.Name != p.name || info.Priority != p.priority {
				t.Fatalf("dump name %q priority %d, want %q %d", info.Name, info.Priority, p.name, p.priority)
			}
			switch {
			case p.rewrite:
				if !slices.Equal(info.Phases, []string{"rewrite"}) {
					t.Fatalf("phases %v: want rewrite only", info.Phases)
				}
				for _, ref := range refs {
					if ref.Service != "" || ref.Route != "" || !ref.Enabled {
						t.Errorf("kong.yml: %s on service %q route %q: it must be global and enabled (rewrite runs before routing)", p.name, ref.Service, ref.Route)
					}
				}
				if len(refs) != 1 {
					t.Errorf("kong.yml configures %s %d times, want once, globally", p.name, len(refs))
				}
			case !slices.Contains(info.Phases, "access") || slices.Contains(info.Phases, "response"):
				t.Fatalf("phases %v: want access, never response", info.Phases)
			}
			schema, err := info.ConfigSchema()
			if err != nil {
				t.Fatal(err)
			}
			if got := SchemaOf(p.config()); !reflect.DeepEqual(got, schema) {
				t.Errorf("SchemaOf(%s config) differs from its -dump schema:\n got  %s\n want %s", p.name, describeSchema(got), describeSchema(schema))
			}
			for _, ref := range refs {
				if err := CheckConfig(schema, ref.Config); err != nil {
					t.Errorf("kong.yml, %s on service %q route %q:\n%v", p.name, ref.Service, ref.Route, err)
				}
			}
			switch p.name {
			case "header-guard", "client-ip":
				golden(t, "testdata/"+p.name+".schema.json", info)
			default:
				checkAuditRecord(t, schema)
			}
		})
	}
	// A plugin name kong.yml uses must be one of ours or a Kong built-in we
	// chose on purpose; catch typos such as "header_guard".
	builtins := []string{"request-size-limiting", "cors", "prometheus", "opentelemetry", "response-transformer"}
	for _, name := range c.PluginNames() {
		known := slices.Contains(builtins, name)
		for _, p := range ourPlugins {
			known = known || p.name == name
		}
		if !known {
			t.Errorf("kong.yml uses unknown plugin %q", name)
		}
	}
}

// checkAuditRecord: the auth and rate-limit plugins offer the optional
// `audit` record (plugins/internal/auditconf) with its redis record.
func checkAuditRecord(t *testing.T, schema *Field) {
	t.Helper()
	var audit *Field
	for _, f := range schema.Fields {
		if f.Name == "audit" {
			audit = f.Field
		}
	}
	if audit == nil || audit.Type != "record" {
		t.Fatalf("schema has no audit record")
	}
	want := map[string]string{"redis": "record", "stream": "string", "max_len": "integer", "queue_size": "integer"}
	for _, f := range audit.Fields {
		if typ, ok := want[f.Name]; ok && f.Field.Type == typ {
			delete(want, f.Name)
		}
	}
	if len(want) > 0 {
		t.Fatalf("audit record lacks %v", want)
	}
}

func dumpPlugin(t *testing.T, goBin, dir, name string) *PluginInfo {
	t.Helper()
	exe := filepath.Join(dir, name) // Kong names a plugin after its executable
	build := exec.Command(goBin, "build", "-o", exe, "./"+name)
	build.Dir = pluginsRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", name, err, out)
	}
	var stdout, stderr bytes.Buffer
	run := exec.Command(exe, "-dump")
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("%s -dump: %v\n%s", name, err, stderr.String())
	}
	d, err := ParseDump(stdout.Bytes())
	if err != nil {
		t.Fatalf("%s -dump: %v\n%s", name, err, stdout.String())
	}
	if d.Protocol != "ProtoBuf:1" || len(d.Plugins) != 1 {
		t.Fatalf("%s -dump: protocol %q, %d plugins", name, d.Protocol, len(d.Plugins))
	}
	return &d.Plugins[0]
}

// golden compares the plugin's name, phases, priority and schema (not its
// version) with a file; go test -run TestKongYMLMatchesPluginSchemas -update
// rewrites it.
func golden(t *testing.T, path string, info *PluginInfo) {
	t.Helper()
	got, err := json.MarshalIndent(map[string]any{
		"Name":     info.Name,
		"Phases":   info.Phases,
		"Priority": info.Priority,
		"Schema":   info.Schema,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the plugin's -dump (run with -update if the change is intended):\n%s", path, got)
	}
}

// describeSchema renders a schema for a failure message.
func describeSchema(f *Field) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func recordSchema(t *testing.T, js string) *Field {
	t.Helper()
	var raw any
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		t.Fatal(err)
	}
	f, err := parseField(raw)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCheckConfigComparesKeysAndTypesRecursively(t *testing.T) {
	schema := recordSchema(t, `{"type":"record","fields":[
		{"max_headers":{"type":"integer"}},
		{"ratio":{"type":"number"}},
		{"name":{"type":"string"}},
		{"on":{"type":"boolean"}},
		{"names":{"type":"array","elements":{"type":"string"}}},
		{"labels":{"type":"map","keys":{"type":"string"},"values":{"type":"integer"}}},
		{"issuers":{"type":"array","elements":{"type":"record","fields":[
			{"issuer":{"type":"string"}},{"jwks_url":{"type":"string"}}]}}}]}`)
	tests := []struct {
		name   string
		config map[string]any
		want   string // "" = valid
	}{
		{"every type right", map[string]any{
			"max_headers": 100, "ratio": 0.5, "name": "x", "on": true, "names": []any{"a"},
			"labels":  map[string]any{"a": 1},
			"issuers": []any{map[string]any{"issuer": "i", "jwks_url": "u"}},
		}, ""},
		{"an integer is a number", map[string]any{"ratio": 2}, ""},
		{"an integral float is an integer", map[string]any{"max_headers": 100.0}, ""},
		{"null is unset", map[string]any{"max_headers": nil, "issuers": nil}, ""},
		{"unknown key", map[string]any{"max_header": 100}, "config.max_header: not in the plugin's schema"},
		{"string for integer", map[string]any{"max_headers": "100"}, "config.max_headers: a string is not a valid integer"},
		{"fraction for integer", map[string]any{"max_headers": 1.5}, "a number is not a valid integer"},
		{"scalar for array", map[string]any{"names": "a"}, "config.names: a string is not a valid array"},
		{"wrong element", map[string]any{"names": []any{"a", 1}}, "config.names[1]: an integer is not a valid string"},
		{"wrong map value", map[string]any{"labels": map[string]any{"a": "b"}}, `config.labels["a"]: a string is not a valid integer`},
		{"unknown key in a nested record", map[string]any{"issuers": []any{map[string]any{"issuer": "i", "jwks": "u"}}},
			"config.issuers[0].jwks: not in the plugin's schema"},
		{"boolean as string", map[string]any{"on": "true"}, "config.on: a string is not a valid boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConfig(schema, tt.config)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseDumpReadsGoPDKOutput(t *testing.T) {
	// Shape printed by go-pdk v0.11.2 (server/rpc.go, getSchemaDict).
	out := `{"Protocol":"ProtoBuf:1","SocketPath":"/usr/local/kong/x.socket","Plugins":[{"Name":"x",` +
		`"Phases":["access"],"Version":"1","Priority":7,"Schema":{"name":"x","fields":[{"config":` +
		`{"type":"record","fields":[{"n":{"type":"integer","between":[0,2147483648]}}]}}]}}]}`
	d, err := ParseDump([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.Plugins[0].ConfigSchema()
	if err != nil || f.Field("n") == nil || f.Field("n").Type != "integer" {
		t.Fatalf("schema %+v, %v", f, err)
	}
	if _, err := ParseDump([]byte(`{"Plugins":[]}`)); err == nil {
		t.Fatal("an empty dump must be an error")
	}
}

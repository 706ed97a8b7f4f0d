package kong

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// fixtureDir holds the plugins' decode fixtures: the config JSON exactly as
// the real Kong sends it to a plugin server (volatile members normalised),
// which plugins/internal/kongjson's decode test feeds to every plugin.
var fixtureDir = filepath.Join("..", "..", "plugins", "internal", "kongjson", "testdata")

// updateFixtures: with EDGEGUARD_UPDATE_KONG_FIXTURES=1 the capture test
// writes the fixtures instead of comparing them.
const updateFixtures = "EDGEGUARD_UPDATE_KONG_FIXTURES"

// fullExempt are the schema fields a "set" config leaves unset on purpose,
// by plugin and dotted path, with the reason.
var fullExempt = map[string]map[string]string{
	"edgeguard": {
		"jwt.audit":       "edgeguard refuses an audit section inside a step by design (allinone.Provision: audit only at the top level)",
		"apikey.audit":    "edgeguard refuses an audit section inside a step by design (allinone.Provision: audit only at the top level)",
		"ratelimit.audit": "edgeguard refuses an audit section inside a step by design (allinone.Provision: audit only at the top level)",
	},
}

// kongMembers are the members Kong 3.9.3 adds to a plugin's config before
// sending it to the plugin server (measured: a route-scoped plugin). Their
// values change with every config and Kong instance; the fixtures keep
// the members, with fixed values.
var kongMembers = []string{"__key__", "__plugin_id", "__seq__", "__ws_id", "route_id"}

// fullConfigs reads testdata/plugin-configs.yml: per plugin, the config
// that sets every schema field.
func fullConfigs(t testing.TB) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "plugin-configs.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Set map[string]map[string]any `yaml:"set"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("testdata/plugin-configs.yml: %v", err)
	}
	for _, p := range pluginNames {
		if f.Set[p] == nil {
			t.Fatalf("testdata/plugin-configs.yml: no set config for %s", p)
		}
	}
	return f.Set
}

// captureRoutes is a service with, for every plugin, a route with the
// plugin unset (`config: {}`) and one with its full config.
func captureRoutes(name, url string, full map[string]map[string]any) map[string]any {
	var routes []map[string]any
	for _, p := range pluginNames {
		routes = append(routes,
			route(p+"-unset", "/"+p+"/unset", plugin(p, nil)),
			route(p+"-set", "/"+p+"/set", plugin(p, full[p])))
	}
	return service(name, url, routes...)
}

// TestFullConfigsSetEverySchemaField keeps testdata/plugin-configs.yml
// "full": every field of every plugin's -dump schema is set (non-null,
// arrays non-empty, records recursively), and nothing outside the schema.
func TestFullConfigsSetEverySchemaField(t *testing.T) {
	full := fullConfigs(t)
	bin := realBin(t)
	for _, p := range pluginNames {
		schema := dumpSchema(t, filepath.Join(bin, p))
		var missing []string
		checkFull(schema, full[p], "", fullExempt[p], &missing)
		if len(missing) > 0 {
			t.Errorf("%s: the set config of testdata/plugin-configs.yml does not set %s", p, strings.Join(missing, ", "))
		}
	}
}

// checkFull walks a -dump record schema against a config value and collects
// the dotted paths of fields that are not set (or not in the schema).
func checkFull(schema map[string]any, value any, path string, exempt map[string]string, missing *[]string) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch schema["type"] {
	case "record":
		obj, ok := value.(map[string]any)
		if !ok {
			*missing = append(*missing, path+" (not a record)")
			return
		}
		known := map[string]bool{}
		fields, _ := schema["fields"].([]any)
		for _, f := range fields {
			for name, sub := range f.(map[string]any) {
				known[name] = true
				p := join(name)
				if _, ok := exempt[p]; ok {
					continue
				}
				v, present := obj[name]
				if !present || v == nil {
					*missing = append(*missing, p)
					continue
				}
				checkFull(sub.(map[string]any), v, p, exempt, missing)
			}
		}
		for name := range obj {
			if !known[name] {
				*missing = append(*missing, join(name)+" (not in the schema)")
			}
		}
	case "array", "set":
		arr, ok := value.([]any)
		if !ok || len(arr) == 0 {
			*missing = append(*missing, path+" (empty or not an array)")
			return
		}
		elem, _ := schema["elements"].(map[string]any)
		for i, v := range arr {
			checkFull(elem, v, fmt.Sprintf("%s[%d]", path, i), exempt, missing)
		}
	case "map":
		if m, ok := value.(map[string]any); !ok || len(m) == 0 {
			*missing = append(*missing, path+" (empty or not a map)")
		}
	}
}

// TestKongSendsPluginConfigsAsCaptured runs Kong with the capture plugin
// server (cmd/kongcapture) in place of every plugin server and the real
// binaries' -dump as the schemas, requests each plugin's unset and full
// route, and compares the config JSON Kong sent with the fixtures in
// plugins/internal/kongjson/testdata (EDGEGUARD_UPDATE_KONG_FIXTURES=1
// writes them).
func TestKongSendsPluginConfigsAsCaptured(t *testing.T) {
	full := fullConfigs(t)
	k := startKong(t, kongOptions{
		config:   declarative(captureRoutes("capture", "http://127.0.0.1:9", full)),
		bin:      captureBin(t),
		queryBin: realBin(t),
	})
	update := os.Getenv(updateFixtures) == "1"
	if update {
		if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pluginNames {
		schema := dumpSchema(t, filepath.Join(realBin(t), p))
		for _, variant := range []string{"unset", "set"} {
			r := mustDo(t, http.MethodGet, k.proxy+"/"+p+"/"+variant, nil)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("%s %s: %d %s: the capture plugin did not answer", p, variant, r.status, r.body)
			}
			got, err := normalizeCapture(r.body, schema)
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", p, variant, err, r.body)
			}
			file := filepath.Join(fixtureDir, "kong-"+p+"-"+variant+".json")
			if update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", file)
				continue
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (%s=1 writes the fixtures)", err, updateFixtures)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: Kong sent a different config than the fixture (%s=1 rewrites it; then run the plugins' decode test)\n got: %s\nwant: %s",
					file, updateFixtures, got, want)
			}
		}
	}
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

const zeroUUID = "00000000-0000-0000-0000-000000000000"

// normalizeCapture checks the members Kong added to a config (anything at
// the top level that is not a schema field must be one of kongMembers, and
// all of them must be there), gives them fixed values (__seq__ 1, every
// UUID the zero UUID) and returns the JSON indented, keys sorted.
func normalizeCapture(raw []byte, schema map[string]any) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	fields := map[string]bool{}
	list, _ := schema["fields"].([]any)
	for _, f := range list {
		for name := range f.(map[string]any) {
			fields[name] = true
		}
	}
	var added []string
	for name := range obj {
		if !fields[name] {
			added = append(added, name)
		}
	}
	sort.Strings(added)
	if !slices.Equal(added, kongMembers) {
		return nil, fmt.Errorf("Kong added the members %v to the config, want %v (a Kong change: update kongMembers and the fixtures)", added, kongMembers)
	}
	for _, name := range kongMembers {
		switch v := obj[name].(type) {
		case json.Number:
			obj[name] = json.Number("1")
		case string:
			obj[name] = uuidRE.ReplaceAllString(v, zeroUUID)
		default:
			return nil, fmt.Errorf("member %s is %T", name, v)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TestEveryFullSchemaStartsInKong starts Kong with the REAL plugin servers
// on every plugin's unset and full route: `kong start` accepts what -dump
// says (and /status/ready is 200); every full config provisions (the secret
// files it names exist here: generated) and answers as configured; every
// unset config that cannot work fails closed (500 edge_misconfigured), never
// lets a request through.
func TestEveryFullSchemaStartsInKong(t *testing.T) {
	full := fullConfigs(t)
	up := newUpstream(t)
	secrets, _ := secretsDir(t, "")
	k := startKong(t, kongOptions{
		config:  declarative(captureRoutes("upstream", up.URL(), full)),
		secrets: secrets,
	})
	if r := mustDo(t, http.MethodGet, k.status+"/status/ready", nil); r.status != http.StatusOK {
		t.Fatalf("/status/ready: %d %s", r.status, r.body)
	}
	tests := []struct {
		path   string
		status int
		code   string // the edgeguard error code; "" for the upstream's answer
	}{
		{"/header-guard/set", 200, ""},
		{"/keycloak-jwt/set", 401, "credential_missing"},
		{"/keycloak-apikey/set", 401, "credential_missing"},
		{"/redis-ratelimit/set", 200, ""}, // the Sentinels do not resolve: on_redis_error local decides
		{"/edgeguard/set", 401, "credential_missing"},
		{"/header-guard/unset", 200, ""}, // every option has a default
		{"/keycloak-jwt/unset", 500, "edge_misconfigured"},
		{"/keycloak-apikey/unset", 500, "edge_misconfigured"},
		{"/redis-ratelimit/unset", 500, "edge_misconfigured"},
		{"/edgeguard/unset", 500, "edge_misconfigured"},
	}
	for _, tt := range tests {
		r := mustDo(t, http.MethodGet, k.proxy+tt.path, http.Header{"X-Test-ID": {tt.path}})
		_, reached := up.seen(tt.path)
		switch {
		case r.status != tt.status || r.code() != tt.code:
			t.Errorf("GET %s: %d %s, want %d %q", tt.path, r.status, r.body, tt.status, tt.code)
		case reached != (tt.code == ""):
			t.Errorf("GET %s: reached the upstream: %v", tt.path, reached)
		}
	}
	// The reason of each misconfiguration is in Kong's error log (the plugin
	// servers' stderr, which Kong logs at [info]: kong.conf's log_level).
	reasons := []string{
		"invalid keycloak-jwt configuration: invalid jwtauth config: at least one issuer is required",
		"invalid keycloak-apikey configuration: validate_url and internal_token_file are required",
		"invalid redis-ratelimit configuration: at least one of second, minute, hour, day is required",
		"invalid edgeguard configuration: no section is configured",
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		log, _ := os.ReadFile(k.errorLog)
		missing = missing[:0]
		for _, r := range reasons {
			if !bytes.Contains(log, []byte(r)) {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, r := range missing {
		t.Errorf("Kong's error log %s does not show %q", k.errorLog, r)
	}
}

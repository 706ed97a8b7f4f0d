package kongjson_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/plugins/internal/allinone"
	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakapikey"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

// expectation is what a Kong-shaped fixture must do once decoded as go-pdk
// decodes it and provisioned as on an instance's first request.
type expectation struct {
	// err is the exact provisioning error ("" = accepted), with the
	// fixture's secret directory spelled /etc/kong/secrets.
	err string
	// audit: the instance emits audit events (its Auditor is not nil).
	audit bool
}

// kongFixtures has one entry per testdata/kong-<plugin>-<case>.json: a
// plugin instance's config JSON as Kong 3.9.3 sends it to the plugin server
// (every schema field present, unset scalars and arrays null, unset records
// as records of nulls, "__seq__", "__key__", "__plugin_id__"). A fixture
// without an entry fails the test: a new capture must be given one. The
// hand-written fixtures have that shape; the captured ones (kong-*-unset,
// kong-*-set) show what the real Kong 3.9.3 sends in DB-less mode: no null
// at all — unset scalars absent, unset records {} — so the decoding must
// take both.
var kongFixtures = map[string]expectation{
	"kong-header-guard-defaults.json":                      {},
	"kong-header-guard-limits.json":                        {},
	"kong-header-guard-max-headers-over-kong-ceiling.json": {err: "invalid header-guard configuration: max_headers 5000 is outside 1..999"},

	// the record of nulls Kong sends for an unset audit is audit off, not
	// "audit.redis.addresses: required when audit is configured"
	"kong-keycloak-jwt-no-audit.json":          {},
	"kong-keycloak-jwt-audit.json":             {audit: true},
	"kong-keycloak-jwt-audit-stream-only.json": {err: "invalid keycloak-jwt configuration: audit.redis.addresses: required when audit is configured"},
	"kong-keycloak-jwt-discovery.json":         {}, // an issuer element with jwks_url null
	"kong-keycloak-jwt-no-issuer.json":         {err: "invalid keycloak-jwt configuration: invalid jwtauth config: at least one issuer is required"},

	"kong-keycloak-apikey-no-audit.json":        {},
	"kong-keycloak-apikey-no-redis.json":        {},
	"kong-keycloak-apikey-audit.json":           {audit: true},
	"kong-keycloak-apikey-no-validate-url.json": {err: "invalid keycloak-apikey configuration: validate_url and internal_token_file are required"},

	"kong-redis-ratelimit-no-audit.json":                   {},
	"kong-redis-ratelimit-audit.json":                      {audit: true},
	"kong-redis-ratelimit-no-redis.json":                   {err: "invalid redis-ratelimit configuration: redis.addresses is required"},
	"kong-redis-ratelimit-role-override-without-role.json": {err: "invalid redis-ratelimit configuration: role_overrides[1]: role is required"},

	// unset sections and the sections' unset audit records are records of
	// nulls: neither "audit: set it at the top level" nor a step built
	"kong-edgeguard-all-sections.json":           {audit: true},
	"kong-edgeguard-no-apikey.json":              {audit: true},
	"kong-edgeguard-no-audit.json":               {},
	"kong-edgeguard-audit-inside-ratelimit.json": {err: "invalid edgeguard configuration: audit: set it at the top level of the edgeguard plugin, not inside jwt, apikey or ratelimit"},
	"kong-edgeguard-no-section.json":             {err: "invalid edgeguard configuration: no section is configured"},

	// Captured from the real Kong 3.9.3 by tests/kong
	// (TestKongSendsPluginConfigsAsCaptured, EDGEGUARD_UPDATE_KONG_FIXTURES=1
	// rewrites them): each plugin with `config: {}` (unset) and with every
	// field of its -dump schema set (tests/kong/testdata/plugin-configs.yml;
	// Redis through TLS Sentinels). In DB-less mode Kong 3.9.3 sends no null
	// at all: an unset scalar is absent and an unset record is {} (nested:
	// {"redis":{}}).
	"kong-header-guard-unset.json":    {},
	"kong-header-guard-set.json":      {},
	"kong-keycloak-jwt-unset.json":    {err: "invalid keycloak-jwt configuration: invalid jwtauth config: at least one issuer is required"},
	"kong-keycloak-jwt-set.json":      {audit: true},
	"kong-keycloak-apikey-unset.json": {err: "invalid keycloak-apikey configuration: validate_url and internal_token_file are required"},
	"kong-keycloak-apikey-set.json":   {audit: true},
	"kong-redis-ratelimit-unset.json": {err: "invalid redis-ratelimit configuration: at least one of second, minute, hour, day is required"},
	"kong-redis-ratelimit-set.json":   {audit: true},
	"kong-edgeguard-unset.json":       {err: "invalid edgeguard configuration: no section is configured"},
	"kong-edgeguard-set.json":         {audit: true},
}

// kongPlugins decode a fixture into their config type as go-pdk does
// (json.Unmarshal into the constructor's value) and provision its pipeline
// as Kong's first request does (audit section included). The
// plugin is the file name's prefix after "kong-".
var kongPlugins = map[string]func(t *testing.T, js []byte) (audit bool, err error){
	headerguard.Name: func(t *testing.T, js []byte) (bool, error) {
		c := decode(t, func() any { return headerguard.New() }, js).(*headerguard.Config)
		_, err := c.Pipeline()
		return false, err
	},
	keycloakjwt.Name: func(t *testing.T, js []byte) (bool, error) {
		c := decode(t, keycloakjwt.New, js).(*keycloakjwt.Config)
		_, err := c.Pipeline()
		return c.Audit.Set(), err
	},
	keycloakapikey.Name: func(t *testing.T, js []byte) (bool, error) {
		c := decode(t, keycloakapikey.New, js).(*keycloakapikey.Config)
		_, err := c.Pipeline()
		return c.Audit.Set(), err
	},
	redisratelimit.Name: func(t *testing.T, js []byte) (bool, error) {
		c := decode(t, redisratelimit.New, js).(*redisratelimit.Config)
		_, err := c.Pipeline()
		return c.Audit.Set(), err
	},
	allinone.Name: func(t *testing.T, js []byte) (bool, error) {
		c := decode(t, allinone.New, js).(*allinone.Config)
		_, err := c.Pipeline()
		return c.Audit.Set(), err
	},
}

// decode is go-pdk v0.11.2's StartInstance: json.Unmarshal of the whole
// config JSON into a fresh value of the plugin's constructor.
func decode(t *testing.T, newConfig func() any, js []byte) any {
	t.Helper()
	c := newConfig()
	if err := json.Unmarshal(js, c); err != nil {
		t.Fatalf("decoding config: %v", err)
	}
	return c
}

// kongSecrets is where kong.yml (and so a captured config) names the secret
// files; the test writes fresh ones of the same names into a temp directory
// and points the fixture there.
const kongSecrets = "/etc/kong/secrets/"

func writeSecrets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	key, _ := plugintest.EdgeKey(t)
	pem, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return []byte(hex.EncodeToString(b))
	}
	for name, content := range map[string][]byte{
		"edge_identity.pem": pem,
		"internal_token":    random(24),
		"dpop_nonce_key":    random(32),
		"redis_password":    random(16),
		// the captured full configs' Redis: TLS Sentinels with a password
		"sentinel_password": random(16),
		"redis_ca.pem":      testenv.SelfSignedCA(t),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir + "/"
}

// TestKongShapedConfigsDecodeAndProvision runs every plugin's Kong-shaped
// fixture through go-pdk's decoding and the plugin's provisioning: unset
// records (records of nulls) must be unset, set records with null fields
// must keep their defaults, and refusals must say exactly why.
func TestKongShapedConfigsDecodeAndProvision(t *testing.T) {
	files, err := filepath.Glob("testdata/kong-*.json")
	if err != nil {
		t.Fatal(err)
	}
	secrets := writeSecrets(t)
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := kongFixtures[name]
			if !ok {
				t.Fatalf("no expectation for %s: add it to kongFixtures", name)
			}
			var run func(*testing.T, []byte) (bool, error)
			for plugin, f := range kongPlugins {
				if strings.HasPrefix(name, "kong-"+plugin+"-") {
					run = f
				}
			}
			if run == nil {
				t.Fatalf("%s names no known plugin (kong-<plugin>-<case>.json)", name)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			js := []byte(strings.ReplaceAll(string(raw), kongSecrets, secrets))
			audit, err := run(t, js)
			got := ""
			if err != nil {
				got = strings.ReplaceAll(err.Error(), secrets, kongSecrets)
			}
			if got != want.err {
				t.Fatalf("provisioning error:\n got  %q\n want %q", got, want.err)
			}
			if err == nil && audit != want.audit {
				t.Fatalf("audit on = %v, want %v", audit, want.audit)
			}
		})
	}
	for name := range kongFixtures {
		if !seen[name] {
			t.Errorf("kongFixtures lists %s, which is not in testdata", name)
		}
	}
	if len(files) == 0 || !slices.ContainsFunc(files, func(f string) bool { return strings.Contains(f, "edgeguard") }) {
		t.Fatal("no Kong-shaped fixtures found")
	}
}

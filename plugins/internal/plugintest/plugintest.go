// Package plugintest renders plugin configurations the way Kong sends them,
// for tests: Kong passes a plugin's config as JSON with EVERY schema field
// present (unset ones null) plus a "__seq__" member, and go-pdk decodes it
// with encoding/json into a fresh New(). Tests should decode exactly that,
// not hand-built Go structs.
package plugintest

import (
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
)

// Fields lists the top-level config keys of a plugin config value, from the
// exported fields' json tags (what go-pdk puts into the schema).
func Fields(config any) []string {
	t := reflect.TypeOf(config)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("json")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, name)
	}
	return out
}

// KongJSON renders set as Kong would send it for a plugin whose config type
// is that of config: every field present, the unset ones null, plus
// "__seq__". A key of set that is not a config field fails the test.
func KongJSON(t testing.TB, config any, set map[string]any) []byte {
	t.Helper()
	m := map[string]any{"__seq__": 7}
	for _, f := range Fields(config) {
		m[f] = nil
	}
	for k, v := range set {
		if _, ok := m[k]; !ok {
			t.Fatalf("test sets %q, which is not a config field", k)
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Decode does what go-pdk does with Kong's JSON: encoding/json into a fresh
// value from the plugin's constructor.
func Decode(t testing.TB, newConfig func() interface{}, js []byte) interface{} {
	t.Helper()
	inst := newConfig()
	if err := json.Unmarshal(js, inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

// EdgeKey writes a fresh edge signing key (edge_signing_key_file) into the
// test's temp dir and returns its path and the JWKS services would read.
func EdgeKey(t testing.TB) (keyPath string, jwks []byte) {
	t.Helper()
	dir := t.TempDir()
	keyPath, jwksPath := filepath.Join(dir, "edge.pem"), filepath.Join(dir, "edge.jwks.json")
	if err := edgeid.WriteKeyFiles(keyPath, jwksPath); err != nil {
		t.Fatal(err)
	}
	if pem, err := os.ReadFile(keyPath); err == nil {
		for _, line := range strings.Split(string(pem), "\n") {
			if !strings.HasPrefix(line, "-----") {
				testenv.RecordSecret(line) // the run's secret sweep
			}
		}
	}
	jwks, err := os.ReadFile(jwksPath)
	if err != nil {
		t.Fatal(err)
	}
	return keyPath, jwks
}

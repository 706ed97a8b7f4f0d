// Package plugintest renders plugin configurations the way Kong sends them,
// for tests: Kong passes a plugin's config as JSON with EVERY schema field
// present plus a "__seq__" member — an unset scalar or array null, an unset
// record a record of nulls (recursively, never null), and the unset fields
// of a set record null too — and go-pdk decodes it with encoding/json into a
// fresh New(). Tests should decode exactly that, not hand-built Go structs.
package plugintest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/testenv"
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
		if f := t.Field(i); f.IsExported() {
			out = append(out, fieldName(f))
		}
	}
	return out
}

// fieldName is a field's name in the schema and in Kong's JSON (go-pdk: the
// whole json tag, else the lower-cased Go name).
func fieldName(f reflect.StructField) string {
	if name := f.Tag.Get("json"); name != "" {
		return name
	}
	return strings.ToLower(f.Name)
}

// KongJSON renders set as Kong would send it for a plugin whose config type
// is that of config: every field present, "__seq__" added, and, recursively
// through records and arrays of records, every unset field null except an
// unset record, which is a record of nulls (Kong never sends a record field
// as null). A key of set that is not a config field fails the test.
func KongJSON(t testing.TB, config any, set map[string]any) []byte {
	t.Helper()
	known := map[string]bool{}
	for _, f := range Fields(config) {
		known[f] = true
	}
	for k := range set {
		if !known[k] {
			t.Fatalf("test sets %q, which is not a config field", k)
		}
	}
	var generic any
	if set != nil {
		generic = roundTrip(t, set)
	}
	m := kongShape(reflect.TypeOf(config), generic).(map[string]any)
	m["__seq__"] = 7
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roundTrip turns v into encoding/json's generic form (numbers kept exact).
func roundTrip(t testing.TB, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// kongShape fills v (generic JSON, nil: unset) out to Kong's shape for
// type typ. Values that do not fit typ are left as they are (tests of
// malformed configs).
func kongShape(typ reflect.Type, v any) any {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if v != nil && !ok {
			return v
		}
		out := map[string]any{}
		for k, sub := range m {
			out[k] = sub
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name := fieldName(f)
			out[name] = kongShape(f.Type, m[name])
		}
		return out
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = e
			if e != nil {
				out[i] = kongShape(typ.Elem(), e)
			}
		}
		return out
	}
	return v
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

package kongconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Dump is what a go-pdk plugin server prints with -dump, which Kong reads
// to learn the plugin's name, phases, priority and config schema.
type Dump struct {
	Protocol   string
	SocketPath string
	Plugins    []PluginInfo
}

// PluginInfo describes one plugin of a Dump.
type PluginInfo struct {
	Name     string
	Phases   []string
	Version  string
	Priority int
	Schema   struct {
		Name   string           `json:"name"`
		Fields []map[string]any `json:"fields"`
	}
}

// ParseDump decodes -dump output.
func ParseDump(data []byte) (*Dump, error) {
	var d Dump
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode plugin dump: %w", err)
	}
	if len(d.Plugins) == 0 {
		return nil, errors.New("plugin dump lists no plugin")
	}
	return &d, nil
}

// ConfigSchema returns the schema of the plugin's config record (the field
// "config" of its schema).
func (p *PluginInfo) ConfigSchema() (*Field, error) {
	for _, f := range p.Schema.Fields {
		if raw, ok := f["config"]; ok {
			return parseField(raw)
		}
	}
	return nil, fmt.Errorf("plugin %s: schema has no config field", p.Name)
}

// Field is a Kong schema type as go-pdk generates it: string, integer,
// number, boolean, array (Elements), map (Keys, Values) or record (Fields,
// in declaration order).
type Field struct {
	Type     string
	Elements *Field
	Keys     *Field
	Values   *Field
	Fields   []NamedField
}

// NamedField is one field of a record.
type NamedField struct {
	Name  string
	Field *Field
}

func parseField(raw any) (*Field, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema field is %T, want an object", raw)
	}
	f := &Field{}
	f.Type, _ = m["type"].(string)
	var err error
	sub := func(key string) *Field {
		v, ok := m[key]
		if !ok || err != nil {
			return nil
		}
		var out *Field
		out, err = parseField(v)
		return out
	}
	switch f.Type {
	case "string", "integer", "number", "boolean":
	case "array", "set":
		if f.Elements = sub("elements"); f.Elements == nil && err == nil {
			err = fmt.Errorf("%s without elements", f.Type)
		}
	case "map":
		f.Keys, f.Values = sub("keys"), sub("values")
		if (f.Keys == nil || f.Values == nil) && err == nil {
			err = errors.New("map without keys or values")
		}
	case "record":
		list, _ := m["fields"].([]any)
		for _, item := range list {
			one, ok := item.(map[string]any)
			if !ok || len(one) != 1 {
				return nil, errors.New("record fields must be single-key objects")
			}
			for name, v := range one {
				ff, ferr := parseField(v)
				if ferr != nil {
					return nil, fmt.Errorf("%s: %w", name, ferr)
				}
				f.Fields = append(f.Fields, NamedField{Name: name, Field: ff})
			}
		}
	default:
		return nil, fmt.Errorf("unknown schema type %q", f.Type)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Field returns the record's field of that name, or nil.
func (f *Field) Field(name string) *Field {
	for _, nf := range f.Fields {
		if nf.Name == name {
			return nf.Field
		}
	}
	return nil
}

// SchemaOf returns the config schema go-pdk derives from a plugin's config
// type (v is a value or pointer of it), as its -dump prints it: the same
// reflection as go-pdk v0.11.2's getSchemaDict (exported fields only, the
// json tag or the lower-cased Go name, unrepresentable types such as int64
// skipped). It lets a host that is not Kong (the dev gateway) refuse what
// Kong's schema validation would refuse, whatever the type's UnmarshalJSON
// does.
func SchemaOf(v any) *Field {
	return schemaOf(reflect.TypeOf(v))
}

func schemaOf(t reflect.Type) *Field {
	switch t.Kind() {
	case reflect.String:
		return &Field{Type: "string"}
	case reflect.Bool:
		return &Field{Type: "boolean"}
	case reflect.Int, reflect.Int32, reflect.Uint, reflect.Uint32:
		return &Field{Type: "integer"}
	case reflect.Float32, reflect.Float64:
		return &Field{Type: "number"}
	case reflect.Pointer:
		return schemaOf(t.Elem())
	case reflect.Slice:
		if e := schemaOf(t.Elem()); e != nil {
			return &Field{Type: "array", Elements: e}
		}
	case reflect.Map:
		k, v := schemaOf(t.Key()), schemaOf(t.Elem())
		if k != nil && v != nil {
			return &Field{Type: "map", Keys: k, Values: v}
		}
	case reflect.Struct:
		f := &Field{Type: "record"}
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if sf.PkgPath != "" {
				continue
			}
			ft := schemaOf(sf.Type)
			if ft == nil {
				continue
			}
			name := sf.Tag.Get("json")
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			f.Fields = append(f.Fields, NamedField{Name: name, Field: ft})
		}
		return f
	}
	return nil
}

// CheckConfig reports every key of config (a plugin's config from a
// declarative file, as decoded from YAML) that the config record schema
// does not declare or whose value has an incompatible type, recursively.
// null is accepted for any field (Kong: unset). The errors are joined.
func CheckConfig(schema *Field, config map[string]any) error {
	if schema == nil || schema.Type != "record" {
		return errors.New("config schema is not a record")
	}
	var errs []error
	checkValue("config", schema, config, &errs)
	return errors.Join(errs...)
}

func checkValue(at string, f *Field, v any, errs *[]error) {
	if v == nil {
		return
	}
	bad := func() {
		*errs = append(*errs, fmt.Errorf("%s: %s is not a valid %s", at, describe(v), f.Type))
	}
	switch f.Type {
	case "string":
		if _, ok := v.(string); !ok {
			bad()
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad()
		}
	case "integer":
		switch n := v.(type) {
		case int, int64, uint64:
		case float64:
			if n != math.Trunc(n) || math.IsInf(n, 0) {
				bad()
			}
		default:
			bad()
		}
	case "number":
		switch v.(type) {
		case int, int64, uint64, float64:
		default:
			bad()
		}
	case "array", "set":
		list, ok := v.([]any)
		if !ok {
			bad()
			return
		}
		for i, e := range list {
			checkValue(fmt.Sprintf("%s[%d]", at, i), f.Elements, e, errs)
		}
	case "map":
		m, ok := v.(map[string]any)
		if !ok {
			bad()
			return
		}
		for _, k := range sortedKeys(m) {
			checkValue(fmt.Sprintf("%s key %q", at, k), f.Keys, k, errs)
			checkValue(fmt.Sprintf("%s[%q]", at, k), f.Values, m[k], errs)
		}
	case "record":
		m, ok := v.(map[string]any)
		if !ok {
			bad()
			return
		}
		for _, k := range sortedKeys(m) {
			sub := f.Field(k)
			if sub == nil {
				*errs = append(*errs, fmt.Errorf("%s.%s: not in the plugin's schema (known: %v)", at, k, fieldNames(f)))
				continue
			}
			checkValue(at+"."+k, sub, m[k], errs)
		}
	default:
		*errs = append(*errs, fmt.Errorf("%s: unknown schema type %q", at, f.Type))
	}
}

func describe(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64:
		return "an integer"
	case float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("a %T", v)
}

func fieldNames(f *Field) []string {
	out := make([]string, len(f.Fields))
	for i, nf := range f.Fields {
		out[i] = nf.Name
	}
	slices.Sort(out)
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

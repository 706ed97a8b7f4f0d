package kongjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeDropsNullsAndRecordsOfNulls(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"Kong's unset audit record is unset",
			`{"audit":{"redis":{"addresses":null,"password_file":null},"stream":null,"max_len":null,"queue_size":null},"__seq__":3}`,
			`{"__seq__":3}`},
		{"null scalars and arrays are unset", `{"a":null,"b":null,"c":1}`, `{"c":1}`},
		{"a set record keeps its set fields only", `{"r":{"x":1,"y":null,"z":{"w":null}}}`, `{"r":{"x":1}}`},
		{"an empty record is unset", `{"r":{},"s":{"t":{}}}`, `{}`},
		{"false, zero and empty string are set", `{"a":false,"b":0,"c":"","d":{"e":false}}`, `{"a":false,"b":0,"c":"","d":{"e":false}}`},
		{"an empty array is set", `{"a":[]}`, `{"a":[]}`},
		{"array elements keep their places", `{"a":[null,{"x":null},{"x":1,"y":null},[{"z":null}],2]}`, `{"a":[null,null,{"x":1},[null],2]}`},
		{"a record of nulls in an array of records", `{"issuers":[{"issuer":"i","jwks_url":null}]}`, `{"issuers":[{"issuer":"i"}]}`},
		{"an entirely unset config is {}", `{"max_headers":null,"r":{"a":null}}`, `{}`},
		{"unknown members are kept", `{"__seq__":7,"__key__":"plugins:x","__plugin_id__":null}`, `{"__seq__":7,"__key__":"plugins:x"}`},
		{"member order and duplicates are kept", `{"b":1,"a":2,"b":3}`, `{"b":1,"a":2,"b":3}`},
		{"numbers are kept digit for digit", `{"n":123456789012345678901234567890,"f":1.50e400,"m":-0}`, `{"n":123456789012345678901234567890,"f":1.50e400,"m":-0}`},
		{"whitespace goes", " {\n \"a\" : [ 1 , 2 ] ,\t\"b\":{ } }\n", `{"a":[1,2]}`},
		{"strings are re-escaped", `{"s":"\u00e9\n\"<&>"}`, `{"s":"é\n\"\u003c\u0026\u003e"}`},
		{"top-level null", `null`, `null`},
		{"top-level array", `[{"a":null},{"b":1}]`, `[null,{"b":1}]`},
		{"top-level scalar", ` "x" `, `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Normalize(%s)\n got  %s\n want %s", tt.in, got, tt.want)
			}
			again, err := Normalize(got)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("not idempotent: %s → %s (%v)", got, again, err)
			}
		})
	}
}

func TestNormalizeRefusesWhatIsNotOneJSONValue(t *testing.T) {
	for _, in := range []string{``, ` `, `{`, `{"a":1}x`, `{"a":1} {}`, `nul`, `{'a':1}`, `{"a":01}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		if out, err := Normalize([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%.40q) = %s, %v; want ErrInvalid", in, out, err)
		}
	}
}

// record is a config type decoding through Unmarshal as the plugins' do.
type record struct {
	Leeway *int     `json:"leeway"`
	Flag   *bool    `json:"flag"`
	Names  []string `json:"names"`
	Sub    *sub     `json:"sub"`
	Inline sub      `json:"inline"`
	List   []sub    `json:"list"`
}

type sub struct {
	Addresses []string `json:"addresses"`
	Port      int      `json:"port"`
	Deeper    *sub     `json:"deeper"`
}

func (r *record) UnmarshalJSON(data []byte) error {
	type plain record
	return Unmarshal(data, (*plain)(r))
}

func TestUnmarshalTreatsKongsUnsetRecordsAsAbsent(t *testing.T) {
	unset := `{"leeway":null,"flag":null,"names":null,` +
		`"sub":{"addresses":null,"port":null,"deeper":{"addresses":null,"port":null,"deeper":null}},` +
		`"inline":{"addresses":null,"port":null,"deeper":null},"list":null,"__seq__":4}`
	var r record
	if err := json.Unmarshal([]byte(unset), &r); err != nil {
		t.Fatal(err)
	}
	if r.Leeway != nil || r.Flag != nil || r.Names != nil || r.Sub != nil || r.Inline.Deeper != nil || r.List != nil {
		t.Fatalf("unset config decoded as %+v", r)
	}

	set := `{"leeway":0,"flag":false,"names":[],` +
		`"sub":{"addresses":null,"port":0,"deeper":{"addresses":["a:1"],"port":null,"deeper":null}},` +
		`"inline":{"addresses":null,"port":null,"deeper":null},"list":[{"addresses":null,"port":null,"deeper":null},{"port":2}]}`
	r = record{}
	if err := json.Unmarshal([]byte(set), &r); err != nil {
		t.Fatal(err)
	}
	switch {
	case r.Leeway == nil || *r.Leeway != 0, r.Flag == nil || *r.Flag:
		t.Fatal("an explicit zero or false is set")
	case r.Names == nil:
		t.Fatal("an explicit empty array is set")
	case r.Sub == nil || r.Sub.Deeper == nil || r.Sub.Deeper.Addresses[0] != "a:1":
		t.Fatalf("a record with a set field is set: %+v", r.Sub)
	case len(r.List) != 2 || r.List[1].Port != 2:
		t.Fatalf("array elements keep their places: %+v", r.List)
	}

	var bad record
	if err := json.Unmarshal([]byte(`{"leeway":"x"}`), &bad); err == nil {
		t.Fatal("a wrong type is still an error")
	}
}

// FuzzNormalize: Normalize never panics; on valid JSON its output is valid
// JSON with no null member and no member that is an empty record, and
// Normalize of the output is the output; anything else is ErrInvalid.
func FuzzNormalize(f *testing.F) {
	files, _ := filepath.Glob("testdata/kong-*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `0`, `"s"`, `true`, `[null,{"a":null},{}]`,
		`{"a":{"b":{"c":{"d":null}}},"e":[{"f":null}]}`,
		`{"n":1e999999999,"m":-123456789012345678901234567890.5e-7}`,
		`{"a":1,"a":null,"a":{"b":null},"a":{}}`,
		`{"":null,"\u0000":1,"\ud800":"\udfff","\u00e9":"\xff\xfe"}`,
		strings.Repeat(`{"a":`, 5000) + `null` + strings.Repeat(`}`, 5000),
		strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999),
		strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
		`{"a":[1,2,`, `{"a":1}{"b":2}`, "\xef\xbb\xbf{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Normalize(in)
		if !json.Valid(in) {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("invalid input: err %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid input refused: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON: %q", out)
		}
		again, err := Normalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n %q\n %q (%v)", out, again, err)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber() // 1e999 is valid JSON, not a float64
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("output does not decode: %v", err)
		}
		if at := unsetMember(v, "$"); at != "" {
			t.Fatalf("output keeps an unset member at %s: %q", at, out)
		}
	})
}

// unsetMember returns the path of a member that is null or an empty
// object, or "".
func unsetMember(v any, at string) string {
	switch x := v.(type) {
	case map[string]any:
		for k, m := range x {
			if sub, ok := m.(map[string]any); m == nil || ok && len(sub) == 0 {
				return at + "." + k
			}
			if p := unsetMember(m, at+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for _, e := range x {
			if p := unsetMember(e, at+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

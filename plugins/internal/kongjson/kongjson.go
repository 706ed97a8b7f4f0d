// Package kongjson decodes a plugin instance's configuration the way Kong
// means it. Kong hands a go-pdk plugin server the config as JSON with EVERY
// schema field present (plus members of its own such as "__seq__" and
// "__key__"): an unset scalar or array is null, but an unset record is not
// null — it arrives as a record whose fields are all null, recursively, e.g.
// "audit":{"redis":{"addresses":null,...},"stream":null,...}. Decoded as is,
// such a record becomes a non-nil pointer and looks configured.
//
// The rule, applied once here and not per field: a null member is unset, and
// a record whose members are all unset (after applying the rule to them) is
// unset too, exactly as if it were null or absent. Normalize drops unset
// members; Unmarshal decodes the result with encoding/json. Each plugin's
// top-level config type decodes through Unmarshal from its UnmarshalJSON
// method, so go-pdk's json.Unmarshal, the dev gateway and the tests all
// apply the rule.
//
// It is not a schema validator: unknown members (Kong's "__seq__" among
// them) are left for encoding/json to ignore, and types are not checked.
package kongjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by Normalize's error for input that is not one
// valid JSON value.
var ErrInvalid = errors.New("invalid JSON")

// Normalize returns data with every unset member removed: a null member, and
// a member whose value is an object all of whose members are unset (so {} is
// unset too), recursively. Array elements keep their places: an unset
// element becomes null. The top-level value is never removed: an object
// that is entirely unset becomes {}, and a top level that is not an object
// is returned re-encoded but otherwise unchanged.
//
// Member order, duplicate members, numbers (digit for digit) and string
// contents are kept; whitespace is not, and strings are re-escaped. The
// output is valid JSON, and Normalize of it returns it unchanged. Input
// that is not exactly one valid JSON value (encoding/json's nesting limit
// included) is an error wrapping ErrInvalid.
func Normalize(data []byte) ([]byte, error) {
	// json.Valid enforces a single value and encoding/json's nesting limit,
	// so the recursion below is bounded and the token walk cannot fail.
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: not a single valid JSON value", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parse(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if v.kind == kindObject {
		v.members = prune(v.members)
	} else {
		v = pruneValue(v)
	}
	var out bytes.Buffer
	out.Grow(len(data))
	write(&out, v)
	return out.Bytes(), nil
}

// Unmarshal normalizes data and decodes it into v with encoding/json. A
// config type calls it from its UnmarshalJSON method through a plain alias
// of itself (no methods, so no recursion):
//
//	func (c *Config) UnmarshalJSON(data []byte) error {
//		type plain Config
//		return kongjson.Unmarshal(data, (*plain)(c))
//	}
func Unmarshal(data []byte, v any) error {
	n, err := Normalize(data)
	if err != nil {
		return err
	}
	return json.Unmarshal(n, v)
}

type kind uint8

const (
	kindNull kind = iota
	kindScalar
	kindObject
	kindArray
)

// value is one parsed JSON value; objects keep their members in order,
// duplicates included.
type value struct {
	kind     kind
	scalar   []byte // the encoded string, number or boolean
	members  []member
	elements []value
}

type member struct {
	key string
	val value
}

func parse(dec *json.Decoder) (value, error) {
	tok, err := dec.Token()
	if err != nil {
		return value{}, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := value{kind: kindObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return value{}, err
				}
				key, ok := kt.(string)
				if !ok {
					return value{}, fmt.Errorf("object key is %T", kt)
				}
				mv, err := parse(dec)
				if err != nil {
					return value{}, err
				}
				v.members = append(v.members, member{key, mv})
			}
			_, err := dec.Token() // '}'
			return v, err
		case '[':
			v := value{kind: kindArray}
			for dec.More() {
				ev, err := parse(dec)
				if err != nil {
					return value{}, err
				}
				v.elements = append(v.elements, ev)
			}
			_, err := dec.Token() // ']'
			return v, err
		}
		return value{}, fmt.Errorf("unexpected %v", t)
	case nil:
		return value{kind: kindNull}, nil
	case bool:
		if t {
			return value{kind: kindScalar, scalar: []byte("true")}, nil
		}
		return value{kind: kindScalar, scalar: []byte("false")}, nil
	case json.Number:
		return value{kind: kindScalar, scalar: []byte(t)}, nil
	case string:
		return value{kind: kindScalar, scalar: encodeString(t)}, nil
	}
	return value{}, fmt.Errorf("unexpected token %T", tok)
}

// pruneValue applies the rule to one value: an unset value becomes null.
func pruneValue(v value) value {
	switch v.kind {
	case kindObject:
		v.members = prune(v.members)
		if len(v.members) == 0 {
			return value{kind: kindNull}
		}
	case kindArray:
		for i := range v.elements {
			v.elements[i] = pruneValue(v.elements[i])
		}
	}
	return v
}

// prune drops the unset members of an object.
func prune(members []member) []member {
	out := members[:0]
	for _, m := range members {
		if m.val = pruneValue(m.val); m.val.kind != kindNull {
			out = append(out, m)
		}
	}
	return out
}

func write(out *bytes.Buffer, v value) {
	switch v.kind {
	case kindNull:
		out.WriteString("null")
	case kindScalar:
		out.Write(v.scalar)
	case kindObject:
		out.WriteByte('{')
		for i, m := range v.members {
			if i > 0 {
				out.WriteByte(',')
			}
			out.Write(encodeString(m.key))
			out.WriteByte(':')
			write(out, m.val)
		}
		out.WriteByte('}')
	case kindArray:
		out.WriteByte('[')
		for i, e := range v.elements {
			if i > 0 {
				out.WriteByte(',')
			}
			write(out, e)
		}
		out.WriteByte(']')
	}
}

// encodeString is s as a JSON string, as encoding/json escapes it.
func encodeString(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

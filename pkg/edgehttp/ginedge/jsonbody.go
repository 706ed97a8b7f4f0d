package ginedge

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// Codes of refused request bodies. They are part of every service's API
// (READMEs, clients, tests): stable.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeUnknownField         = "unknown_field"
	CodeFieldType            = "invalid_field_type"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeBodyUnreadable       = "body_unreadable"
)

// The kinds of refused bodies, matched with errors.Is on the *BodyError
// that JSONBody and ReadBody return.
var (
	// ErrInvalidJSON: not exactly one JSON object (empty, another JSON
	// value, a syntax error, data after the object).
	ErrInvalidJSON = errors.New("request body is not one JSON object")
	// ErrUnknownField: a name that is not a field of the destination.
	ErrUnknownField = errors.New("request body has an unknown field")
	// ErrFieldType: a value that does not fit its field.
	ErrFieldType = errors.New("request body has a field of the wrong type")
	// ErrBodyTooLarge: more bytes than the limit.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrUnsupportedMediaType: a body declared as something else than
	// application/json.
	ErrUnsupportedMediaType = errors.New("request body is not application/json")
	// ErrBodyUnreadable: reading the body failed (the client went away,
	// a broken chunked encoding). Services answer it with their own code
	// when theirs predates this package.
	ErrBodyUnreadable = errors.New("request body unreadable")
)

// BodyError is a refused request body: a 4xx status, a stable code and a
// message for the client, which names at most the offending field (quoted,
// truncated), never a value. Kind, when set, is one of the Err* kinds
// above; a service's own refusals of a decoded body (a value out of range)
// are BodyErrors without a kind.
type BodyError struct {
	Status  int
	Code    string
	Message string
	Kind    error
}

func (e *BodyError) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the kind, so errors.Is(err, ErrUnknownField) works.
func (e *BodyError) Unwrap() error { return e.Kind }

func refused(kind error, status int, code, message string) *BodyError {
	return &BodyError{Status: status, Code: code, Message: message, Kind: kind}
}

// JSONBody is a strict JSON request body: at most Limit bytes, declared
// application/json when it declares a type, exactly one JSON object with
// nothing after it, every name a field of the destination struct and every
// value of its field's type. Every refusal is a *BodyError (400, 413 or
// 415, a stable code); nothing a client sends makes it fail otherwise, so a
// bad body is never a 5xx.
//
// Precedence when a body has several faults: the type (415), then the size
// (413), then "one JSON object" (syntax, trailing data), then unknown names
// (the first in byte order), then values.
type JSONBody struct {
	// Limit bounds the body in bytes (required, > 0).
	Limit int64
	// FoldNames matches a name to a field case-insensitively ("Name" or
	// "NAME" fills the field "name": encoding/json's rule). By default a
	// name must be exactly the field's.
	FoldNames bool
}

// Read reads c's body: declared application/json if it declares a type
// (checked only for a request that has a body), at most b.Limit bytes
// (refused from Content-Length before reading). An absent body — none, or
// only whitespace — is nil, for the caller to accept or refuse.
func (b JSONBody) Read(c *gin.Context) ([]byte, error) {
	r := c.Request
	if r.ContentLength != 0 && !declaresJSON(r.Header) {
		return nil, refused(ErrUnsupportedMediaType, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"Content-Type must be application/json")
	}
	body, err := ReadBody(c, b.Limit)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return body, nil
}

// ReadBody reads at most limit bytes of c's body: 413 body_too_large past
// it (from Content-Length before reading anything), 400 body_unreadable
// when reading fails. No body is an empty slice.
func ReadBody(c *gin.Context, limit int64) ([]byte, error) {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, nil
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, refused(ErrBodyUnreadable, http.StatusBadRequest, CodeBodyUnreadable, "the request body could not be read")
	}
	return body, nil
}

func tooLarge(limit int64) *BodyError {
	return refused(ErrBodyTooLarge, http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
		fmt.Sprintf("request body exceeds %d bytes", limit))
}

// declaresJSON: no Content-Type, or application/json (parameters such as
// charset allowed).
func declaresJSON(h http.Header) bool {
	ct := h.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// Decode decodes body, one JSON object of at most b.Limit bytes, into dst,
// a non-nil pointer to a struct (its exported fields named as
// encoding/json names them; nested structs, and slices and maps of them,
// are checked the same way). An empty body is refused (invalid_json): the
// caller decides first whether an absent body is acceptable. A dst that is
// not a pointer is the caller's bug: an error that is not a *BodyError.
func (b JSONBody) Decode(body []byte, dst any) error {
	if b.Limit > 0 && int64(len(body)) > b.Limit {
		return tooLarge(b.Limit)
	}
	t := reflect.TypeOf(dst)
	if t == nil || t.Kind() != reflect.Pointer || reflect.ValueOf(dst).IsNil() {
		return fmt.Errorf("ginedge: JSONBody.Decode into %T: not a non-nil pointer", dst)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return refused(ErrInvalidJSON, http.StatusBadRequest, CodeInvalidJSON, "the body must be one JSON object")
	}
	// one object, nothing after it
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&obj); err != nil {
		return refused(ErrInvalidJSON, http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return refused(ErrInvalidJSON, http.StatusBadRequest, CodeInvalidJSON, "unexpected data after the JSON object")
	}
	// every name a field
	if name, ok := unknownName(obj, t.Elem(), b.FoldNames); ok {
		return refused(ErrUnknownField, http.StatusBadRequest, CodeUnknownField, "unknown field "+quote(name))
	}
	// every value of its field's type
	dec = json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields() // never trips after unknownName; kept as a second lock
	if err := dec.Decode(dst); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			field := ute.Field
			if field == "" {
				field = "body"
			}
			return refused(ErrFieldType, http.StatusBadRequest, CodeFieldType, "field "+quote(field)+" has the wrong type")
		}
		// a field's own UnmarshalJSON/UnmarshalText refusing its value
		return refused(ErrFieldType, http.StatusBadRequest, CodeFieldType, "a field has the wrong type or value")
	}
	return nil
}

// unknownName returns the first name (in byte order) of obj, an object
// destined for t, that names no field of t, looking into nested objects
// destined for structs, and into arrays and objects of them.
func unknownName(obj map[string]json.RawMessage, t reflect.Type, fold bool) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || custom(t) {
		return "", false // a map, any, or a type that decodes itself: no field names to check
	}
	fields := fieldsOf(t)
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		f, ok := fields.lookup(name, fold)
		if !ok {
			return name, true
		}
		if inner, ok := nestedUnknown(obj[name], f, fold); ok {
			return name + "." + inner, true
		}
	}
	return "", false
}

// nestedUnknown checks a value destined for a field of type t: an object
// for a struct, and the elements of an array or the values of an object
// for slices, arrays and maps of structs. A value of another shape is left
// to the typed decode (invalid_field_type).
func nestedUnknown(raw json.RawMessage, t reflect.Type, fold bool) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if custom(t) {
		return "", false
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return "", false
		}
		return unknownName(obj, t, fold)
	case reflect.Slice, reflect.Array:
		if !holdsStructs(t.Elem()) {
			return "", false
		}
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return "", false
		}
		for i, it := range items {
			if name, ok := nestedUnknown(it, t.Elem(), fold); ok {
				return strconv.Itoa(i) + "." + name, true
			}
		}
	case reflect.Map:
		if !holdsStructs(t.Elem()) {
			return "", false
		}
		var vals map[string]json.RawMessage
		if json.Unmarshal(raw, &vals) != nil {
			return "", false
		}
		for _, k := range slices.Sorted(maps.Keys(vals)) {
			if name, ok := nestedUnknown(vals[k], t.Elem(), fold); ok {
				return k + "." + name, true
			}
		}
	}
	return "", false
}

// holdsStructs: t is, or contains through pointers, slices, arrays and
// maps, a struct whose names are checked.
func holdsStructs(t reflect.Type) bool {
	for {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			if custom(t) {
				return false
			}
			t = t.Elem()
		case reflect.Struct:
			return !custom(t)
		default:
			return false
		}
	}
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// custom: t decodes itself (time.Time, json.RawMessage…).
func custom(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

// fieldSet is a struct's JSON names and their types.
type fieldSet map[string]reflect.Type

func (fs fieldSet) lookup(name string, fold bool) (reflect.Type, bool) {
	if t, ok := fs[name]; ok {
		return t, true
	}
	if fold {
		for n, t := range fs {
			if strings.EqualFold(n, name) {
				return t, true
			}
		}
	}
	return nil, false
}

var fieldCache sync.Map // reflect.Type → fieldSet

// fieldsOf returns t's JSON names as encoding/json sees them: exported
// fields, named by their json tag or their Go name, "-" skipped, the
// fields of untagged embedded structs promoted.
func fieldsOf(t reflect.Type) fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fieldSet)
	}
	fs := fieldSet{}
	addFields(fs, t, 0)
	fieldCache.Store(t, fs)
	return fs
}

func addFields(fs fieldSet, t reflect.Type, depth int) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct && depth < 8 {
				addFields(fs, et, depth+1)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := fs[name]; !dup || depth == 0 {
			fs[name] = f.Type
		}
	}
}

// quote quotes a name for a message: at most 64 bytes, cut on a rune
// boundary, escaped (invalid UTF-8 and control characters included).
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

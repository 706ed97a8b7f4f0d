package ginedge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/gin-gonic/gin"
)

// createReq has the shapes the services decode: optional scalars behind
// pointers, a slice, a nested struct, a slice of structs, a type that
// decodes itself.
type createReq struct {
	Name    *string   `json:"name"`
	Days    *int      `json:"expires_in_days"`
	Roles   *[]string `json:"roles"`
	Meta    *meta     `json:"meta"`
	Items   []meta    `json:"items"`
	At      time.Time `json:"at"`
	Ignored string    `json:"-"`
	//lint:ignore U1000 an unexported field is not a JSON name: never filled
	hidden string
}

type meta struct {
	Note string `json:"note"`
}

func deep(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }

// attacks are real hostile JSON bodies: parser differentials, case and
// Unicode folding of names, duplicate keys, nesting bombs, numbers that
// overflow, non-JSON extensions, smuggled trailing documents.
var attacks = []string{
	`{"name":"ci","expires_in_days":30,"roles":["user"]}`, `{}`, ` {} `, "{\n}",
	`null`, `[]`, `"x"`, `1`, `true`, ``, `   `, `{`, `}`, `{"name":"x"`, `{"name":"x",}`, `{'name':'x'}`,
	`{"name":"x"} {"name":"y"}`, `{"name":"x"}garbage`, `{"name":"x"}]`, `{"name":"x"}` + "\x00",
	`{"name":"a","name":"b"}`, `{"NAME":"x"}`, `{"Name":"x"}`, `{"name":"a","NAME":"b"}`,
	"{\"\u017fcope\":1}", "{\"\u212aey\":1}", `{"n\u0061me":"x"}`, `{"name\u0000":"x"}`,
	`{"__proto__":{"admin":true}}`, `{"constructor":{"prototype":{}}}`, `{"admin":true}`,
	`{"name":123}`, `{"name":{"$ne":null}}`, `{"name":["x"]}`, `{"roles":"admin"}`, `{"roles":["user",1]}`,
	`{"expires_in_days":"30"}`, `{"expires_in_days":1.5}`, `{"expires_in_days":1e3}`, `{"expires_in_days":1e400}`,
	`{"expires_in_days":99999999999999999999999}`, `{"expires_in_days":-0}`, `{"expires_in_days":NaN}`,
	`{"meta":{"note":"x","admin":true}}`, `{"meta":{"NOTE":"x"}}`, `{"meta":"x"}`, `{"items":[{"note":"a"},{"x":1}]}`,
	`{"items":{"note":"a"}}`, `{"at":"2030-01-01T00:00:00Z"}`, `{"at":"yesterday"}`, `{"at":{"x":1}}`,
	`{"Ignored":"x"}`, `{"-":"x"}`, `{"hidden":"x"}`, `{"name":"x" /* c */}`, "\xef\xbb\xbf{}",
	"{\"name\":\"\xff\xfe\"}", "{\"\xff\":1}", `{"name":"\ud800"}`,
	`{"roles":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, deep(2000), deep(10001),
	`{"` + strings.Repeat("é", 100) + `":1}`,
}

func TestDecodeRefusesWithStableCodes(t *testing.T) {
	exact := ginedge.JSONBody{Limit: 64 << 10}
	fold := ginedge.JSONBody{Limit: 64 << 10, FoldNames: true}
	for _, tc := range []struct {
		name, body string
		fold       bool
		status     int
		code       string
		kind       error
	}{
		{"an object", `{"name":"ci","expires_in_days":30,"roles":["user"]}`, false, 0, "", nil},
		{"empty object", ` {} `, false, 0, "", nil},
		{"duplicate key is still one object", `{"name":"a","name":"b"}`, false, 0, "", nil},
		{"nested and self-decoding fields", `{"meta":{"note":"x"},"items":[{"note":"y"}],"at":"2030-01-01T00:00:00Z"}`, false, 0, "", nil},
		{"empty", ``, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"whitespace", " \n\t", false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"null", `null`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"array", `[{"name":"x"}]`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"string", `"x"`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"truncated", `{"name":"x"`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"trailing comma", `{"name":"x",}`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"single quotes", `{'name':'x'}`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"comment", `{"name":"x" /* c */}`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"byte order mark", "\xef\xbb\xbf{}", false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"second document", `{"name":"x"} {"name":"y"}`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"trailing garbage", `{"name":"x"}garbage`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"trailing NUL", "{}\x00", false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"trailing data wins over an unknown field", `{"admin":1} x`, false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"unknown field", `{"name":"x","admin":true}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"prototype pollution", `{"__proto__":{"admin":true}}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"name in another case", `{"NAME":"x"}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"name smuggled in another case", `{"name":"a","Name":"b"}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"long s is not s", "{\"role\u017f\":[\"x\"]}", false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"folded: long s folds to s, as encoding/json folds it", "{\"role\u017f\":[\"x\"]}", true, 0, "", nil},
		{"a json:\"-\" field", `{"Ignored":"x"}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"an unexported field", `{"hidden":"x"}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"unknown field in a nested object", `{"meta":{"note":"x","admin":true}}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"unknown field in a list of objects", `{"items":[{"note":"a"},{"x":1}]}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"deep object", deep(2000), false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"too deep to parse", deep(10001), false, 400, ginedge.CodeInvalidJSON, ginedge.ErrInvalidJSON},
		{"unknown field wins over a wrong type", `{"name":1,"admin":true}`, false, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
		{"wrong type", `{"name":123}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"operator object", `{"name":{"$ne":null}}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"number in a list of strings", `{"roles":["user",1]}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"string for an int", `{"expires_in_days":"30"}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"fraction for an int", `{"expires_in_days":1.5}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"exponent for an int", `{"expires_in_days":1e3}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"overflowing number", `{"expires_in_days":1e400}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"nesting bomb in a list", `{"roles":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"string for a nested object", `{"meta":"x"}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"a value its type refuses", `{"at":"yesterday"}`, false, 400, ginedge.CodeFieldType, ginedge.ErrFieldType},
		{"over the limit", `{"name":"` + strings.Repeat("n", 64<<10) + `"}`, false, 413, ginedge.CodeBodyTooLarge, ginedge.ErrBodyTooLarge},
		{"folded: another case fills the field", `{"NAME":"x","Meta":{"NOTE":"y"}}`, true, 0, "", nil},
		{"folded: unknown still refused", `{"NAME":"x","admin":1}`, true, 400, ginedge.CodeUnknownField, ginedge.ErrUnknownField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := exact
			if tc.fold {
				b = fold
			}
			var dst createReq
			err := b.Decode([]byte(tc.body), &dst)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var be *ginedge.BodyError
			if !errors.As(err, &be) || be.Status != tc.status || be.Code != tc.code || !errors.Is(err, tc.kind) {
				t.Fatalf("got %#v, want %d %s", err, tc.status, tc.code)
			}
			if be.Error() != be.Code+": "+be.Message || !utf8.ValidString(be.Message) || len(be.Message) > 120 {
				t.Fatalf("message %q", be.Message)
			}
		})
	}
}

func TestDecodeValuesAndMessages(t *testing.T) {
	b := ginedge.JSONBody{Limit: 1 << 10, FoldNames: true}
	var dst createReq
	if err := b.Decode([]byte(`{"Name":"ci","expires_in_days":7,"roles":[],"name":"ci2"}`), &dst); err != nil {
		t.Fatal(err)
	}
	if *dst.Name != "ci2" || *dst.Days != 7 || dst.Roles == nil || len(*dst.Roles) != 0 {
		t.Fatalf("%+v", dst)
	}
	for _, tc := range []struct{ body, message string }{
		{`{"admin":true,"zzz":1}`, `unknown field "admin"`},
		{`{"meta":{"admin":1}}`, `unknown field "meta.admin"`},
		{`{"items":[{},{"x":1}]}`, `unknown field "items.1.x"`},
		{`{"roles":"admin"}`, `field "roles" has the wrong type`},
		{"{\"" + strings.Repeat("é", 40) + "\":1}", `unknown field "` + strings.Repeat("é", 32) + `"…`},
		{"{\"a\\u0000\\u001b[31m\":1}", `unknown field "a\x00\x1b[31m"`},
	} {
		err := b.Decode([]byte(tc.body), &createReq{})
		var be *ginedge.BodyError
		if !errors.As(err, &be) || be.Message != tc.message {
			t.Errorf("%s: %v, want message %s", tc.body, err, tc.message)
		}
	}
	// the caller's bug is not a client's fault: no BodyError
	for _, dst := range []any{nil, createReq{}, (*createReq)(nil)} {
		var be *ginedge.BodyError
		if err := b.Decode([]byte(`{}`), dst); err == nil || errors.As(err, &be) {
			t.Errorf("Decode into %T: %v", dst, err)
		}
	}
}

// readEngine answers POST /x with the body Read returned, or the refusal.
func readEngine(b ginedge.JSONBody) *gin.Engine {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	e.POST("/x", func(c *gin.Context) {
		body, err := b.Read(c)
		if err != nil {
			var be *ginedge.BodyError
			if !errors.As(err, &be) {
				ginedge.Abort(c, 500, "internal_error", err.Error())
				return
			}
			ginedge.Abort(c, be.Status, be.Code, be.Message)
			return
		}
		if body == nil {
			c.String(204, "")
			return
		}
		c.String(200, string(body))
	})
	return e
}

func TestReadChecksTypeAndSizeAndReportsAbsence(t *testing.T) {
	e := readEngine(ginedge.JSONBody{Limit: 16})
	for _, tc := range []struct {
		name, ct string
		body     io.Reader
		length   int64 // -1: chunked
		status   int
		code     string
	}{
		{"no body", "", nil, 0, 204, ""},
		{"no body, another type", "text/plain", nil, 0, 204, ""},
		{"whitespace is absent", "application/json", strings.NewReader(" \r\n "), 4, 204, ""},
		{"a body", "", strings.NewReader(`{"a":1}`), 7, 200, ""},
		{"charset parameter", "application/json; charset=utf-8", strings.NewReader(`{}`), 2, 200, ""},
		{"exactly the limit", "application/json", strings.NewReader(strings.Repeat(" ", 14) + "{}"), 16, 200, ""},
		{"another type", "text/plain", strings.NewReader(`{}`), 2, 415, ginedge.CodeUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", strings.NewReader(`a=1`), 3, 415, ginedge.CodeUnsupportedMediaType},
		{"unparsable type", "application/json; =", strings.NewReader(`{}`), 2, 415, ginedge.CodeUnsupportedMediaType},
		{"json-ish type", "application/jsonx", strings.NewReader(`{}`), 2, 415, ginedge.CodeUnsupportedMediaType},
		{"chunked, another type", "text/plain", strings.NewReader(``), -1, 415, ginedge.CodeUnsupportedMediaType},
		{"type wins over size", "text/plain", strings.NewReader(strings.Repeat("x", 17)), 17, 415, ginedge.CodeUnsupportedMediaType},
		{"declared over the limit", "", strings.NewReader(strings.Repeat(" ", 17)), 17, 413, ginedge.CodeBodyTooLarge},
		{"chunked over the limit", "", strings.NewReader(strings.Repeat(" ", 17)), -1, 413, ginedge.CodeBodyTooLarge},
		{"broken stream", "", iotest.ErrReader(io.ErrUnexpectedEOF), -1, 400, ginedge.CodeBodyUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", tc.body)
			r.ContentLength = tc.length
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, r)
			if w.Code != tc.status || (tc.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tc.code+`"`)) {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, tc.status, tc.code)
			}
		})
	}
}

// FuzzJSONBodyDecode: no input makes Decode panic or fail other than with
// a 4xx BodyError of a known code; an accepted body is one JSON object
// whose names are all fields (exactly, without FoldNames).
func FuzzJSONBodyDecode(f *testing.F) {
	for _, s := range attacks {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	codes := map[string]bool{ginedge.CodeInvalidJSON: true, ginedge.CodeUnknownField: true, ginedge.CodeFieldType: true,
		ginedge.CodeBodyTooLarge: true}
	f.Fuzz(func(t *testing.T, body []byte, fold bool) {
		b := ginedge.JSONBody{Limit: 32 << 10, FoldNames: fold}
		var dst createReq
		err := b.Decode(body, &dst)
		if err != nil {
			var be *ginedge.BodyError
			if !errors.As(err, &be) || be.Status < 400 || be.Status > 499 || !codes[be.Code] || be.Kind == nil ||
				!utf8.ValidString(be.Message) || len(be.Message) > 120 {
				t.Fatalf("refusal %#v for %q", err, body)
			}
			return
		}
		names, jerr := oneObject(body)
		if jerr != nil {
			t.Fatalf("accepted %q, which is not one object: %v", body, jerr)
		}
		for n := range names {
			switch n {
			case "name", "expires_in_days", "roles", "meta", "items", "at":
			default:
				if !fold {
					t.Fatalf("accepted %q with the name %q", body, n)
				}
			}
		}
	})
}

// oneObject is the test's own reading of "one JSON object, nothing after".
func oneObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return m, nil
}

// FuzzJSONBodyRead: any body under any Content-Type, read by a handler, is
// answered 2xx, 400, 413 or 415 — never 5xx.
func FuzzJSONBodyRead(f *testing.F) {
	for _, s := range attacks {
		f.Add([]byte(s), "application/json", false)
	}
	f.Add([]byte(`{}`), "text/plain", false)
	f.Add([]byte(`a=1`), "application/x-www-form-urlencoded", true)
	f.Add([]byte(strings.Repeat(" ", 300)), "", true)
	f.Add([]byte(`{}`), "application/json; charset=utf-8; x", false)
	e := readEngine(ginedge.JSONBody{Limit: 256})
	f.Fuzz(func(t *testing.T, body []byte, ct string, chunked bool) {
		r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(string(body)))
		if chunked {
			r.ContentLength = -1
		}
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		switch w.Code {
		case 200, 204, 400, 413, 415:
		default:
			t.Fatalf("status %d for %q (%q): %s", w.Code, body, ct, w.Body)
		}
	})
}

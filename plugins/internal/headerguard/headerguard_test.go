package headerguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

func guard(t testing.TB, c *Config) *Guard {
	t.Helper()
	g, err := c.Provision()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Handle runs g's stages as header-guard's pipeline on host (the same
// pipeline.Run Kong runs).
func (g *Guard) Handle(host exchange.Exchange) pipeline.Outcome {
	return pipeline.Run(host, pipeline.New(Name, pipeline.Options{MaxHeaders: g.MaxHeaders()}, g.Stages()...))
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return b.Error.Code
}

func TestClientIdentityHeadersAreStripped(t *testing.T) {
	tests := []struct {
		name      string
		headers   map[string][]string
		cleared   []string // names as they appear in Headers (lower case)
		untouched []string
	}{
		{"canonical", map[string][]string{"X-User-ID": {"admin"}}, []string{"x-user-id"}, nil},
		{"underscores", map[string][]string{"x_user_id": {"admin"}}, []string{"x_user_id"}, nil},
		{"upper case with underscores", map[string][]string{"X_AUTH_METHOD": {"jwt"}}, []string{"x_auth_method"}, nil},
		{"every reserved family", map[string][]string{
			"X-User-Roles": {"admin"}, "X-Auth-Method": {"apikey"}, "X-API-Key-ID": {"k"},
			"X-Consumer-ID": {"c"}, "X-Credential-Identifier": {"c"}, "X-Anonymous-Consumer": {"false"},
			"X-Edge-Identity": {"forged.jws.sig"}, "X-Userinfo": {"e30"}, "X-Access-Token": {"t"},
			"X-ID-Token": {"t"},
		}, []string{"x-user-roles", "x-auth-method", "x-api-key-id", "x-consumer-id", "x-credential-identifier",
			"x-anonymous-consumer", "x-edge-identity", "x-userinfo", "x-access-token", "x-id-token"}, nil},
		{"unicode case trick keeps the ASCII prefix", map[string][]string{"X-User-\u0130D": {"admin"}},
			[]string{"x-user-\u0130d"}, nil},
		{"Connection names a header", map[string][]string{
			"Connection": {"keep-alive, X-Forwarded-Email2"}, "X-Forwarded-Email2": {"a@b"},
		}, []string{"x-forwarded-email2"}, []string{"connection"}},
		{"Connection names a reserved header", map[string][]string{
			"Connection": {"X-User-ID"}, "X-User-ID": {"admin"},
		}, []string{"x-user-id"}, nil},
		{"Connection names an underscore spelling", map[string][]string{
			"Connection": {"close, x-debug"}, "X_Debug": {"1"},
		}, []string{"x_debug"}, nil},
		{"ordinary headers stay", map[string][]string{
			"Authorization": {"Bearer x"}, "X-API-Key": {"sk_x"}, "Accept": {"*/*"}, "Connection": {"upgrade"},
		}, nil, []string{"authorization", "x-api-key", "accept", "connection"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := exchange.NewFake("GET", "/v1/models", tt.headers)
			guard(t, &Config{}).Handle(f)
			if f.Exited() {
				t.Fatalf("exited %d %s", f.ExitStatus, f.ExitBody)
			}
			got := slices.Sorted(slices.Values(f.Cleared))
			want := slices.Sorted(slices.Values(tt.cleared))
			if !slices.Equal(got, want) {
				t.Fatalf("cleared %q, want %q", got, want)
			}
			for _, name := range tt.untouched {
				if f.WasCleared(name) {
					t.Fatalf("%s must not be cleared", name)
				}
			}
			for name := range f.Upstream {
				if name != HeaderRequestID {
					t.Fatalf("header-guard set %s upstream", name)
				}
			}
		})
	}
}

func TestConfiguredStripHeadersAreRemovedInAnySpelling(t *testing.T) {
	f := exchange.NewFake("GET", "/", map[string][]string{
		"X-Debug": {"1"}, "x_debug": {"1"}, "X-Debugger": {"1"}, "Cookie": {"a=b"},
	})
	guard(t, &Config{StripHeaders: []string{"X-DEBUG", "cookie"}}).Handle(f)
	got := slices.Sorted(slices.Values(f.Cleared))
	if want := []string{"cookie", "x-debug", "x_debug"}; !slices.Equal(got, want) {
		t.Fatalf("cleared %q, want %q", got, want)
	}
}

func TestRequestIDIsKeptOnlyWhenWellFormed(t *testing.T) {
	tests := []struct {
		name string
		id   []string // nil: no header
		keep bool
	}{
		{"absent", nil, false},
		{"uuid", []string{"0f8fad5b-d9cb-469f-a165-70867728950e"}, true},
		{"dots and underscores", []string{"req_1.2-a"}, true},
		{"128 chars", []string{strings.Repeat("a", 128)}, true},
		{"129 chars", []string{strings.Repeat("a", 129)}, false},
		{"empty", []string{""}, false},
		{"unicode", []string{"r\u00e9q"}, false},
		{"CRLF injection", []string{"abc\r\nX-User-ID: admin"}, false},
		{"space", []string{"a b"}, false},
		{"slash", []string{"../a"}, false},
		{"first of two wins", []string{"first", "second"}, true},
		// the attack run's audit suppression: charset-valid ids shaped like
		// an API key or a JWT are replaced, so nothing downstream (services,
		// logs, audit events) ever sees them
		{"api key shaped", []string{"sk_rt1234"}, false},
		{"api key shaped, upper case", []string{"SK_live_Ab3dE5g7_secret"}, false},
		{"jwt shaped", []string{"eyJrt.ab12.x"}, false},
		{"a real jwt", []string{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}, false},
		{"credential-shaped first of two", []string{"eyJrt.ab12.x", "good"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string][]string{}
			if tt.id != nil {
				h["X-Request-ID"] = tt.id
			}
			f := exchange.NewFake("GET", "/", h)
			g := guard(t, &Config{})
			g.newID = func() string { return "generated-id" }
			g.Handle(f)
			want := "generated-id"
			if tt.keep {
				want = tt.id[0]
			}
			if got, _ := f.UpstreamHeader(HeaderRequestID); got != want {
				t.Fatalf("upstream X-Request-ID = %q, want %q", got, want)
			}
			if got := f.Response[HeaderRequestID]; got != want {
				t.Fatalf("response X-Request-ID = %q, want %q", got, want)
			}
		})
	}
}

func TestGeneratedRequestIDsAre128RandomBitsInHex(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := requestid.New()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || !requestid.Valid(id) {
			t.Fatalf("id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestUnderscoreSpellingsOfRequestIDAreStripped(t *testing.T) {
	f := exchange.NewFake("GET", "/", map[string][]string{
		"X-Request-ID": {"good"}, "X_Request_ID": {"evil"},
	})
	guard(t, &Config{}).Handle(f)
	if !slices.Equal(f.Cleared, []string{"x_request_id"}) {
		t.Fatalf("cleared %q", f.Cleared)
	}
	if v, _ := f.UpstreamHeader(HeaderRequestID); v != "good" {
		t.Fatalf("X-Request-ID = %q", v)
	}
}

func TestOversizedHeadersAreRefusedWith431(t *testing.T) {
	many := map[string][]string{}
	for i := range 11 {
		many["x-h"+strings.Repeat("x", i)] = []string{"v"}
	}
	tests := []struct {
		name    string
		cfg     *Config
		headers map[string][]string
		code    string
	}{
		{"more lines than max_headers", &Config{MaxHeaders: 10}, many, pipeline.CodeTooManyHeaders},
		{"repeated values count as lines", &Config{MaxHeaders: 2},
			map[string][]string{"a": {"1", "2", "3"}}, pipeline.CodeTooManyHeaders},
		{"one 10 kB value over 8 kB", &Config{MaxHeaderBytes: 8192},
			map[string][]string{"X-Big": {strings.Repeat("v", 10<<10)}}, CodeHeadersTooLarge},
		{"sum of lines over the default", &Config{},
			map[string][]string{"a": {strings.Repeat("v", 20000)}, "b": {strings.Repeat("v", 20000)}}, CodeHeadersTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := exchange.NewFake("GET", "/", tt.headers)
			guard(t, tt.cfg).Handle(f)
			if f.ExitStatus != 431 || errorCode(t, f.ExitBody) != tt.code {
				t.Fatalf("status %d body %s", f.ExitStatus, f.ExitBody)
			}
			if !requestid.Valid(f.ExitHeaders[HeaderRequestID]) {
				t.Fatalf("431 without a request id: %v", f.ExitHeaders)
			}
			if len(f.Upstream) != 0 || len(f.Cleared) != 0 {
				t.Fatal("no upstream writes on a refusal")
			}
		})
	}
}

func TestHeaderBytesCountNameValueAndFourBytesPerLine(t *testing.T) {
	// "a: <v>\r\n" with len(v) = 1024-1-4 is exactly 1024 bytes.
	at := map[string][]string{"a": {strings.Repeat("v", 1019)}}
	over := map[string][]string{"a": {strings.Repeat("v", 1020)}}
	g := guard(t, &Config{MaxHeaderBytes: 1024})
	f := exchange.NewFake("GET", "/", at)
	g.Handle(f)
	if f.Exited() {
		t.Fatalf("1024 bytes at a 1024 limit refused")
	}
	f = exchange.NewFake("GET", "/", over)
	g.Handle(f)
	if f.ExitStatus != 431 {
		t.Fatalf("1025 bytes at a 1024 limit: status %d", f.ExitStatus)
	}
}

func TestConfigDecodesFromKongJSON(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		want  Guard
		error bool
	}{
		{"all unset (null) means defaults",
			`{"max_headers":null,"max_header_bytes":null,"strip_headers":null,"__seq__":3}`,
			Guard{maxHeaders: 100, maxBytes: 32768}, false},
		{"kong.yml values",
			`{"max_headers":100,"max_header_bytes":32768,"strip_headers":null,"__seq__":7}`,
			Guard{maxHeaders: 100, maxBytes: 32768}, false},
		{"every field set",
			`{"max_headers":50,"max_header_bytes":4096,"strip_headers":["X-Debug","x_trace"],"__seq__":1}`,
			Guard{maxHeaders: 50, maxBytes: 4096, strip: []string{"x-debug", "x-trace"}}, false},
		{"empty strip list", `{"max_headers":null,"max_header_bytes":null,"strip_headers":[],"__seq__":2}`,
			Guard{maxHeaders: 100, maxBytes: 32768}, false},
		{"max_headers above Kong's ceiling", `{"max_headers":5000,"max_header_bytes":null,"strip_headers":null,"__seq__":3}`,
			Guard{}, true},
		{"negative max_headers", `{"max_headers":-1,"max_header_bytes":null,"strip_headers":null}`, Guard{}, true},
		{"tiny max_header_bytes", `{"max_headers":null,"max_header_bytes":100,"strip_headers":null}`, Guard{}, true},
		{"header name with a space", `{"max_headers":null,"max_header_bytes":null,"strip_headers":["X Debug"]}`, Guard{}, true},
		{"header name with CRLF", `{"max_headers":null,"max_header_bytes":null,"strip_headers":["a\r\nb"]}`, Guard{}, true},
		{"empty header name", `{"max_headers":null,"max_header_bytes":null,"strip_headers":[""]}`, Guard{}, true},
		{"host", `{"max_headers":null,"max_header_bytes":null,"strip_headers":["Host"]}`, Guard{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As go-pdk's StartInstance does: a fresh New(), encoding/json.
			var instance interface{} = New()
			if err := json.Unmarshal([]byte(tt.json), instance); err != nil {
				t.Fatalf("decode: %v", err)
			}
			g, err := instance.(*Config).Provision()
			if tt.error {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.maxHeaders != tt.want.maxHeaders || g.maxBytes != tt.want.maxBytes || !slices.Equal(g.strip, tt.want.strip) {
				t.Fatalf("guard = %+v, want %+v", *g, tt.want)
			}
		})
	}
}

func TestMisconfiguredInstanceAnswers500AndLogsOnce(t *testing.T) {
	var instance interface{} = New()
	if err := json.Unmarshal([]byte(`{"max_headers":5000,"max_header_bytes":null,"strip_headers":null,"__seq__":3}`), instance); err != nil {
		t.Fatal(err)
	}
	c := instance.(*Config)
	var logs bytes.Buffer
	l := zerolog.New(&logs)
	c.rt.Log = &l

	for range 3 {
		f := exchange.NewFake("GET", "/", map[string][]string{"X-User-ID": {"admin"}})
		c.Handle(f)
		if f.ExitStatus != 500 || errorCode(t, f.ExitBody) != "edge_misconfigured" {
			t.Fatalf("status %d body %s", f.ExitStatus, f.ExitBody)
		}
		if strings.Contains(string(f.ExitBody), "max_headers") {
			t.Fatalf("the reason leaked to the client: %s", f.ExitBody)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "max_headers 5000") {
		t.Fatalf("logs = %q, want one line with the reason", logs.String())
	}
}

func TestValidConfigLogsNothing(t *testing.T) {
	c := New()
	var logs bytes.Buffer
	l := zerolog.New(&logs)
	c.rt.Log = &l
	for range 3 {
		c.Handle(exchange.NewFake("GET", "/", map[string][]string{"X-User-ID": {"admin"}}))
	}
	if logs.Len() != 0 {
		t.Fatalf("per-request logging: %s", logs.String())
	}
}

func benchHeaders() map[string][]string {
	return map[string][]string{
		"Host":            {"api.example.com"},
		"User-Agent":      {"OpenAI/Python 1.40.0"},
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip, deflate"},
		"Authorization":   {"Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig"},
		"Content-Type":    {"application/json"},
		"Content-Length":  {"512"},
		"X-Forwarded-For": {"198.51.100.7"},
		"X-Request-ID":    {"0f8fad5b-d9cb-469f-a165-70867728950e"},
	}
}

func benchmarkHandle(b *testing.B, headers map[string][]string) {
	g := guard(b, &Config{})
	f := exchange.NewFake("POST", "/v1/chat/completions", headers)
	b.ReportAllocs()
	for b.Loop() {
		clear(f.Upstream)
		clear(f.Response)
		f.Cleared = f.Cleared[:0]
		g.Handle(f)
	}
}

func BenchmarkHandleCleanRequest(b *testing.B) { benchmarkHandle(b, benchHeaders()) }

func BenchmarkHandleGeneratedRequestID(b *testing.B) {
	h := benchHeaders()
	delete(h, "X-Request-ID")
	benchmarkHandle(b, h)
}

func BenchmarkHandleSpoofedIdentity(b *testing.B) {
	h := benchHeaders()
	h["X-User-ID"] = []string{"admin"}
	h["x_auth_method"] = []string{"jwt"}
	h["Connection"] = []string{"X-Edge-Identity"}
	benchmarkHandle(b, h)
}

func discard() *zerolog.Logger {
	l := zerolog.Nop()
	return &l
}

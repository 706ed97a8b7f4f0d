package headerguard

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
)

// kongConfig decodes a Kong-shaped config JSON into New(), as go-pdk does.
func kongConfig(t *testing.T, js string) *Config {
	t.Helper()
	var instance interface{} = New()
	if err := json.Unmarshal([]byte(js), instance); err != nil {
		t.Fatal(err)
	}
	return instance.(*Config)
}

const kongDefaults = `{"max_headers":null,"max_header_bytes":null,"strip_headers":null,"__seq__":3}`

// TestPDKCallsPerPath pins the exact PDK call list of each path through
// go-pdk's test environment; README.md lists the same table.
func TestPDKCallsPerPath(t *testing.T) {
	const (
		getHeaders  = kongadapter.CallGetHeaders
		clear       = kongadapter.CallClearHeader
		setUpstream = kongadapter.CallSetHeaders
		setResponse = kongadapter.CallResponseSetHeaders
		exit        = kongadapter.CallExit
	)
	seven := http.Header{}
	for i := range 7 {
		seven.Set("X-H"+strings.Repeat("h", i), "v")
	}
	tests := []struct {
		name    string
		config  string
		headers http.Header
		want    []string
		status  int // 0: passed on
	}{
		{"clean request", kongDefaults, http.Header{"Accept": {"*/*"}, "X-Request-Id": {"abc"}},
			[]string{getHeaders, setUpstream, setResponse}, 0},
		{"clean request without request id", kongDefaults, http.Header{"Accept": {"*/*"}},
			[]string{getHeaders, setUpstream, setResponse}, 0},
		{"spoofed identity headers: one clear each", kongDefaults, http.Header{
			"X-User-Id": {"admin"}, "X_user_id": {"admin"}, "X-Auth-Method": {"jwt"}, "Accept": {"*/*"},
		}, []string{getHeaders, clear, clear, clear, setUpstream, setResponse}, 0},
		{"Connection names a header", kongDefaults, http.Header{
			"Connection": {"keep-alive, X-Secret"}, "X-Secret": {"1"},
		}, []string{getHeaders, clear, setUpstream, setResponse}, 0},
		{"too many headers", `{"max_headers":5,"max_header_bytes":null,"strip_headers":null,"__seq__":4}`,
			seven, []string{getHeaders, exit}, 431},
		{"headers too large", `{"max_headers":null,"max_header_bytes":1024,"strip_headers":null,"__seq__":5}`,
			http.Header{"X-Big": {strings.Repeat("v", 2000)}}, []string{getHeaders, exit}, 431},
		{"misconfigured", `{"max_headers":5000,"max_header_bytes":null,"strip_headers":null,"__seq__":6}`,
			http.Header{"X-User-Id": {"admin"}}, []string{exit}, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kongConfig(t, tt.config)
			c.rt.Log = discard()
			env := kongtest.New(t, test.Request{Method: "GET", Url: "https://api.example.com/v1/models", Headers: tt.headers})
			env.Access(kongadapter.Handler(c))
			if got := env.Calls(); !slices.Equal(got, tt.want) {
				t.Fatalf("PDK calls:\n got  %v\n want %v", got, tt.want)
			}
			if env.ClientRes.Status != tt.status {
				t.Fatalf("status = %d, want %d (%s)", env.ClientRes.Status, tt.status, env.ClientRes.Body)
			}
			if tt.status != 0 {
				return
			}
			if n := env.HeadersMax(); n != 101 {
				t.Fatalf("get_headers max = %d, want max_headers+1", n)
			}
			up := env.ServiceReq.Headers
			for name := range up {
				if name != "X-Request-Id" && (strings.HasPrefix(strings.ToLower(name), "x-user") ||
					strings.HasPrefix(strings.ToLower(name), "x_user") || strings.EqualFold(name, "x-auth-method") ||
					strings.EqualFold(name, "x-secret")) {
					t.Fatalf("%s reached the upstream: %v", name, up)
				}
			}
			rid := up.Values("X-Request-Id")
			if len(rid) != 1 || !requestid.Valid(rid[0]) || env.ClientRes.Headers.Get("X-Request-Id") != rid[0] {
				t.Fatalf("request id upstream %v, response %q", rid, env.ClientRes.Headers.Get("X-Request-Id"))
			}
			if tt.headers.Get("X-Request-Id") != "" && rid[0] != tt.headers.Get("X-Request-Id") {
				t.Fatalf("valid client request id replaced: %q", rid[0])
			}
		})
	}
}

// TestKongReplacesACredentialShapedRequestID: a request id shaped like an
// API key or a JWT is replaced by a generated one upstream (set_headers
// replaces the client's header) and on the response, with the same three
// PDK calls as any clean request.
func TestKongReplacesACredentialShapedRequestID(t *testing.T) {
	for _, bad := range []string{"sk_rt1234", "eyJrt.ab12.x"} {
		t.Run(bad, func(t *testing.T) {
			c := kongConfig(t, kongDefaults)
			c.rt.Log = discard()
			env := kongtest.New(t, test.Request{Method: "GET", Url: "https://api.example.com/v1/models",
				Headers: http.Header{"Accept": {"*/*"}, "X-Request-Id": {bad}}})
			env.Access(kongadapter.Handler(c))
			want := []string{kongadapter.CallGetHeaders, kongadapter.CallSetHeaders, kongadapter.CallResponseSetHeaders}
			if got := env.Calls(); !slices.Equal(got, want) {
				t.Fatalf("PDK calls:\n got  %v\n want %v", got, want)
			}
			up := env.ServiceReq.Headers.Values("X-Request-Id")
			res := env.ClientRes.Headers.Values("X-Request-Id")
			if len(up) != 1 || up[0] == bad || !requestid.Valid(up[0]) || len(up[0]) != 32 {
				t.Fatalf("upstream X-Request-ID %q, want a generated id", up)
			}
			if len(res) != 1 || res[0] != up[0] {
				t.Fatalf("response X-Request-ID %q, want the upstream one %q", res, up[0])
			}
		})
	}
}

func TestKongHeaderLimitIsReadAsMaxPlusOne(t *testing.T) {
	c := kongConfig(t, `{"max_headers":999,"max_header_bytes":null,"strip_headers":null,"__seq__":1}`)
	env := kongtest.New(t, test.Request{Method: "GET", Url: "http://x/", Headers: http.Header{"A": {"1"}}})
	env.Access(kongadapter.Handler(c))
	if n := env.HeadersMax(); n != 1000 {
		t.Fatalf("get_headers max = %d, want 1000 (Kong's ceiling)", n)
	}
}

func TestKongMisconfiguredInstanceAnswersEveryRequest(t *testing.T) {
	c := kongConfig(t, `{"max_headers":5000,"max_header_bytes":null,"strip_headers":null,"__seq__":3}`)
	c.rt.Log = discard()
	for range 3 {
		env := kongtest.New(t, test.Request{Method: "POST", Url: "http://x/auth/guest-login", Body: []byte("{}")})
		env.Access(kongadapter.Handler(c))
		var body struct{ Error struct{ Code string } }
		_ = json.Unmarshal(env.ClientRes.Body, &body)
		if env.ClientRes.Status != 500 || body.Error.Code != "edge_misconfigured" {
			t.Fatalf("status %d body %s", env.ClientRes.Status, env.ClientRes.Body)
		}
	}
}

package kongadapter

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/bridge"
	"github.com/Kong/go-pdk/response"
	service_request "github.com/Kong/go-pdk/service/request"
	"github.com/Kong/go-pdk/test"
	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
)

// TestRewriteClearsTheClientsForwardedForInOneCall: whatever X-Forwarded-For
// the client sends (a chain, several lines, none), the rewrite handler makes
// exactly one PDK call, kong.service.request.clear_header("X-Forwarded-For"),
// and no client copy is left for Kong's runloop to prepend to the peer.
func TestRewriteClearsTheClientsForwardedForInOneCall(t *testing.T) {
	for name, xff := range map[string][]string{
		"a chain":       {"198.18.0.9, 203.0.113.7"},
		"several lines": {"198.18.0.9", "203.0.113.7, 10.0.0.1"},
		"one address":   {"203.0.113.7"},
		"garbage":       {"unknown, <script>"},
		"none":          nil,
	} {
		t.Run(name, func(t *testing.T) {
			h := http.Header{"Authorization": {"Bearer eyJ.x.y"}}
			if xff != nil {
				h["X-Forwarded-For"] = xff
			}
			env := kongtest.New(t, test.Request{Method: "GET", Url: "http://api.example.com/v1/models", Headers: h})
			NewClientIP().(*ClientIPConfig).Rewrite(env.PDK)
			if got := env.Calls(); !slices.Equal(got, []string{CallClearHeader}) {
				t.Errorf("PDK calls %q, want exactly [%s]", got, CallClearHeader)
			}
			if v := env.ServiceReq.Headers.Values("X-Forwarded-For"); len(v) != 0 {
				t.Errorf("X-Forwarded-For %q left for the upstream", v)
			}
			if env.ServiceReq.Headers.Get("Authorization") == "" {
				t.Error("another header was removed")
			}
			if env.ClientRes.Status != 0 {
				t.Errorf("status %d: the request must go on", env.ClientRes.Status)
			}
		})
	}
}

// TestRewriteFailureIsLogged: a PDK call without a reply fails only when
// the socket to Kong does (Kong then answers the request 500 itself:
// pluginserver error); the handler logs the failed call and still tries to
// end the request, without panicking.
func TestRewriteFailureIsLogged(t *testing.T) {
	plugin, kong := net.Pipe()
	kong.Close()
	b := bridge.New(plugin)
	var logs bytes.Buffer
	l := zerolog.New(&logs)
	c := &ClientIPConfig{log: &l}
	c.Rewrite(&pdk.PDK{ServiceRequest: service_request.Request{PdkBridge: b}, Response: response.Response{PdkBridge: b}})
	if !strings.Contains(logs.String(), CallClearHeader) {
		t.Errorf("log %q does not name the failed call", logs.String())
	}
}

// TestConfigAcceptsWhatKongSends: Kong hands a plugin without options {}
// with bookkeeping members; none of it is an error.
func TestConfigAcceptsWhatKongSends(t *testing.T) {
	for _, raw := range []string{`{}`, `{"__seq__":3}`, `null`} {
		if err := json.Unmarshal([]byte(raw), NewClientIP()); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// TestOnlyTheRewritePhase: the plugin has no access, response or log
// handler (each would cost every request another plugin-server event), and
// go-pdk's own harness runs it as Kong would.
func TestOnlyTheRewritePhase(t *testing.T) {
	c := NewClientIP()
	for name, has := range map[string]bool{
		"Access":   implements[interface{ Access(*pdk.PDK) }](c),
		"Response": implements[interface{ Response(*pdk.PDK) }](c),
		"Log":      implements[interface{ Log(*pdk.PDK) }](c),
		"Rewrite":  !implements[interface{ Rewrite(*pdk.PDK) }](c),
	} {
		if has {
			t.Errorf("%s: the plugin must have a Rewrite handler and nothing else", name)
		}
	}
	env, err := test.New(t, test.Request{Method: "GET", Url: "http://api.example.com/v1/models",
		Headers: http.Header{"X-Forwarded-For": {"198.18.0.9, 203.0.113.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	env.DoHttp(c)
	if v := env.ServiceReq.Headers.Values("X-Forwarded-For"); len(v) != 0 || env.ClientRes.Status != 200 {
		t.Errorf("through go-pdk's harness: X-Forwarded-For %q, status %d", v, env.ClientRes.Status)
	}
}

func implements[I any](v any) bool {
	_, ok := v.(I)
	return ok
}

package kongadapter_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Kong/go-pdk/test"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter/kongtest"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

func get(headers http.Header) test.Request {
	return test.Request{Method: "GET", Url: "http://example.com/v1/models?q=1", Headers: headers}
}

// serve runs handle as the one stage of a pipeline on a new Adapter of env
// (as Access does) and checks that the adapter's own call log matches what
// crossed the wire.
func serve(t *testing.T, env *kongtest.Env, maxHeaders int, handle func(exchange.Exchange)) (*kongadapter.Adapter, pipeline.Outcome) {
	t.Helper()
	a := kongadapter.New(env.PDK, maxHeaders)
	out := pipeline.Run(a, pipeline.New("test", pipeline.Options{MaxHeaders: maxHeaders},
		pipeline.StageFunc(false, func(r *pipeline.Request) pipeline.Result { handle(r); return pipeline.Next })))
	if got, wire := a.Calls(), env.Calls(); !slices.Equal(got, wire) {
		t.Fatalf("adapter recorded %v, wire saw %v", got, wire)
	}
	return a, out
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("PDK calls:\n got  %v\n want %v", got, want)
	}
}

func TestFlushSendsUpstreamAndResponseHeadersInOneCallEach(t *testing.T) {
	env := kongtest.New(t, get(http.Header{"X-Request-Id": {"abc"}}))
	a, _ := serve(t, env, 0, func(ex exchange.Exchange) {
		if ex.Header("X-REQUEST-ID") != "abc" || ex.Header("x-request-id") != "abc" {
			t.Errorf("Header is not case-insensitive: %v", ex.Headers())
		}
		ex.SetUpstreamHeader("X-A", "1")
		ex.SetUpstreamHeader("X-B", "2")
		ex.SetUpstreamHeader("x-a", "3") // replaces X-A
		ex.SetResponseHeader("X-Request-ID", "abc")
		ex.SetResponseHeader("X-C", "4")
	})
	wantCalls(t, a.Calls(), kongadapter.CallGetHeaders, kongadapter.CallSetHeaders, kongadapter.CallResponseSetHeaders)
	if got := env.ServiceReq.Headers.Values("X-A"); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("upstream X-A = %v", got)
	}
	if env.ServiceReq.Headers.Get("X-B") != "2" || env.ClientRes.Headers.Get("X-C") != "4" ||
		env.ClientRes.Headers.Get("X-Request-ID") != "abc" {
		t.Fatalf("upstream %v, response %v", env.ServiceReq.Headers, env.ClientRes.Headers)
	}
	if a.Failed() != nil {
		t.Fatal(a.Failed())
	}
}

func TestNothingBufferedIssuesNoCall(t *testing.T) {
	tests := []struct {
		name   string
		handle func(exchange.Exchange)
		want   []string
	}{
		{"no-op handler", func(exchange.Exchange) {}, nil},
		{"reads only", func(ex exchange.Exchange) { ex.Header("a"); ex.Headers() },
			[]string{kongadapter.CallGetHeaders}},
		{"set then cleared", func(ex exchange.Exchange) {
			ex.SetUpstreamHeader("X-A", "1")
			ex.ClearUpstreamHeader("X-A") // an absent header: one clear, no set
		}, []string{kongadapter.CallClearHeader}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(nil))
			a, _ := serve(t, env, 0, tt.handle)
			wantCalls(t, a.Calls(), tt.want...)
		})
	}
}

func TestFlushSkipsClearsOfHeadersBeingSet(t *testing.T) {
	env := kongtest.New(t, get(http.Header{
		"X-User-Id":     {"spoofed"},
		"X_user_id":     {"spoofed"},
		"X-Auth-Method": {"jwt"},
	}))
	a, _ := serve(t, env, 0, func(ex exchange.Exchange) {
		for name := range ex.Headers() {
			ex.ClearUpstreamHeader(name)
		}
		ex.ClearUpstreamHeader("X-USER-ID") // duplicate in another case: one clear at most
		ex.SetUpstreamHeader("X-User-ID", "u1")
	})
	// x-user-id is overridden by set_headers; x_user_id ('_' is another
	// name to nginx) and x-auth-method are cleared, one call each.
	wantCalls(t, a.Calls(), kongadapter.CallGetHeaders, kongadapter.CallClearHeader, kongadapter.CallClearHeader, kongadapter.CallSetHeaders)
	h := env.ServiceReq.Headers
	if got := h.Values("X-User-Id"); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("X-User-ID upstream = %v", got)
	}
	if h.Get("X_user_id") != "" || h.Get("X-Auth-Method") != "" {
		t.Fatalf("spoofed headers reached upstream: %v", h)
	}
}

func TestFlushDoesNotTreatUnicodeFoldsAsTheSameHeader(t *testing.T) {
	// strings.EqualFold("k", "\u212a") is true; nginx compares bytes. A clear
	// of "x-user-\u212aey" must not be skipped because X-User-Key is set.
	env := kongtest.New(t, get(nil))
	a, _ := serve(t, env, 0, func(ex exchange.Exchange) {
		ex.ClearUpstreamHeader("x-user-\u212aey")
		ex.SetUpstreamHeader("X-User-Key", "v")
	})
	wantCalls(t, a.Calls(), kongadapter.CallClearHeader, kongadapter.CallSetHeaders)
}

func TestExitMergesBufferedResponseHeadersInOneCall(t *testing.T) {
	env := kongtest.New(t, get(nil))
	a, _ := serve(t, env, 0, func(ex exchange.Exchange) {
		ex.SetResponseHeader("X-Request-ID", "rid")
		ex.SetResponseHeader("content-type", "text/plain") // overridden by the exit's
		ex.SetUpstreamHeader("X-Dropped", "1")
		ex.Exit(401, exchange.ErrorBody("token_missing", "authentication required"),
			map[string]string{"WWW-Authenticate": `Bearer realm="edge"`, "Content-Type": exchange.ContentTypeJSON})
		ex.SetResponseHeader("X-After", "1")
		ex.Exit(200, nil, nil)
		if !ex.Exited() {
			t.Error("Exited = false after Exit")
		}
	})
	wantCalls(t, a.Calls(), kongadapter.CallExit)
	if env.ClientRes.Status != 401 {
		t.Fatalf("status = %d", env.ClientRes.Status)
	}
	h := env.ClientRes.Headers
	if h.Get("X-Request-ID") != "rid" || h.Get("WWW-Authenticate") != `Bearer realm="edge"` ||
		!slices.Equal(h.Values("Content-Type"), []string{exchange.ContentTypeJSON}) || h.Get("X-After") != "" {
		t.Fatalf("exit headers = %v", h)
	}
	var body struct{ Error struct{ Code string } }
	if err := json.Unmarshal(env.ClientRes.Body, &body); err != nil || body.Error.Code != "token_missing" {
		t.Fatalf("body = %s (%v)", env.ClientRes.Body, err)
	}
	if err := a.Flush(); err != nil || len(a.Calls()) != 1 {
		t.Fatalf("Flush after Exit: %v, calls %v", err, a.Calls())
	}
}

func TestIdentityRoundTripsThroughCtxShared(t *testing.T) {
	env := kongtest.New(t, get(http.Header{"X-User-Id": {"spoofed"}}))
	want := &identity.Identity{
		Subject: "u-1", Username: "alice", RealmRoles: []string{"user", "admin"},
		Scopes: []string{"openid"}, AuthMethod: identity.MethodJWT,
		ExpiresAt: time.Unix(1_900_000_000, 0).UTC(),
	}

	first := kongadapter.New(env.PDK, 0)
	if id, ok := first.Authenticated(); ok {
		t.Fatalf("identity before any plugin set one: %+v (request headers are never identity)", id)
	}
	first.SetAuthenticated(want)
	if id, ok := first.Authenticated(); !ok || id != want {
		t.Fatalf("Authenticated after Set = %v, %v", id, ok)
	}
	wantCalls(t, first.Calls(), kongadapter.CallSharedGet, kongadapter.CallSharedSet)
	if _, ok := env.Ctx.Store[kongadapter.IdentityKey].(string); !ok {
		t.Fatalf("ctx.shared holds %T, want a JSON string", env.Ctx.Store[kongadapter.IdentityKey])
	}

	// A later plugin in the same request.
	later := kongadapter.New(env.PDK, 0)
	got, ok := later.Authenticated()
	if !ok {
		t.Fatal("later plugin sees no identity")
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("round trip:\n got  %s\n want %s", a, b)
	}
	later.Authenticated()
	wantCalls(t, later.Calls(), kongadapter.CallSharedGet)
}

func TestInvalidSharedIdentityIsNoIdentity(t *testing.T) {
	tests := []struct {
		name  string
		value any
	}{
		{"not JSON", "{not json"},
		{"no subject", `{"method":"jwt"}`},
		{"not a string", 42.0},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(nil))
			env.Ctx.Store[kongadapter.IdentityKey] = tt.value
			a := kongadapter.New(env.PDK, 0)
			if id, ok := a.Authenticated(); ok || id != nil {
				t.Fatalf("Authenticated = %+v, %v", id, ok)
			}
			if a.Failed() != nil {
				t.Fatalf("a bad value is not a PDK failure: %v", a.Failed())
			}
		})
	}
}

// The adapter asks get_headers for one value more than the limit, so the
// pipeline can tell a request over it (431, no stage runs on a partial
// view) from one at it.
func TestHeaderLimitAsksForOneMore(t *testing.T) {
	five := http.Header{"A": {"1", "2"}, "B": {"3"}, "C": {"4"}, "D": {"5"}}
	tests := []struct {
		name     string
		max      int
		wantMax  int
		wantMany bool
	}{
		{"default limit", 0, 101, false},
		{"at the limit", 5, 6, false},
		{"one value over", 4, 5, true},
		{"clamped to Kong's ceiling", 5000, 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(five))
			a := kongadapter.New(env.PDK, tt.max)
			ran := false
			out := pipeline.Run(a, pipeline.New("test", pipeline.Options{MaxHeaders: tt.max},
				pipeline.StageFunc(true, func(r *pipeline.Request) pipeline.Result { ran = true; r.Header("a"); return pipeline.Next })))
			if got := env.HeadersMax(); got != tt.wantMax {
				t.Fatalf("get_headers max = %d, want %d", got, tt.wantMax)
			}
			if tt.wantMany {
				if out.Status != 431 || out.Code != pipeline.CodeTooManyHeaders || ran {
					t.Fatalf("outcome %+v, stage ran %v", out, ran)
				}
				wantCalls(t, a.Calls(), kongadapter.CallGetHeaders, kongadapter.CallExit)
				return
			}
			if out.Status != 0 || !ran {
				t.Fatalf("outcome %+v, stage ran %v", out, ran)
			}
			wantCalls(t, a.Calls(), kongadapter.CallGetHeaders)
		})
	}
}

func TestRequestAttributesAreReadLazilyOnce(t *testing.T) {
	env := kongtest.New(t, get(nil))
	a := kongadapter.New(env.PDK, 0)
	wantCalls(t, a.Calls())
	for range 2 {
		if a.Method() != "GET" || a.Path() != "/v1/models" || a.ClientIP() != "10.10.10.1" {
			t.Fatalf("method %q path %q ip %q", a.Method(), a.Path(), a.ClientIP())
		}
	}
	wantCalls(t, a.Calls(), kongadapter.CallGetMethod, kongadapter.CallGetPath, kongadapter.CallGetForwardedIP)
}

func TestFailuresAnswer500EdgeError(t *testing.T) {
	tests := []struct {
		name   string
		fail   string
		handle func(exchange.Exchange)
		want   []string
	}{
		{"headers unreadable", kongadapter.CallGetHeaders, func(ex exchange.Exchange) {
			if ex.Header("x-user-id") != "" || len(ex.Headers()) != 0 {
				t.Error("a failed read must look empty")
			}
			ex.SetUpstreamHeader("X-Request-ID", "r")
		}, []string{kongadapter.CallGetHeaders, kongadapter.CallExit}},
		{"client address unreadable", kongadapter.CallGetForwardedIP, func(ex exchange.Exchange) {
			ex.ClientIP()
		}, []string{kongadapter.CallGetForwardedIP, kongadapter.CallExit}},
		{"shared identity unreadable", kongadapter.CallSharedGet, func(ex exchange.Exchange) {
			ex.Authenticated()
		}, []string{kongadapter.CallSharedGet, kongadapter.CallExit}},
		{"handler panics", "", func(ex exchange.Exchange) {
			ex.SetResponseHeader("X-Request-ID", "r")
			panic("boom")
		}, []string{kongadapter.CallExit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(http.Header{"X-User-Id": {"x"}}))
			env.Fail[tt.fail] = true
			a, out := serve(t, env, 0, tt.handle)
			wantCalls(t, a.Calls(), tt.want...)
			if env.ClientRes.Status != 500 {
				t.Fatalf("status = %d", env.ClientRes.Status)
			}
			var body struct{ Error struct{ Code string } }
			if err := json.Unmarshal(env.ClientRes.Body, &body); err != nil || body.Error.Code != "edge_error" {
				t.Fatalf("body = %s", env.ClientRes.Body)
			}
			if out.Err == nil || out.Status != 500 || out.Code != pipeline.CodeEdgeError {
				t.Fatalf("outcome %+v", out)
			}
			if tt.fail != "" && (!errors.Is(a.Failed(), kongadapter.ErrPDK) || !errors.Is(out.Err, kongadapter.ErrPDK)) {
				t.Fatalf("Failed() = %v, outcome %v: want ErrPDK", a.Failed(), out.Err)
			}
		})
	}
}

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
)

func get(headers http.Header) test.Request {
	return test.Request{Method: "GET", Url: "http://example.com/v1/models?q=1", Headers: headers}
}

// serve runs handle through kongadapter.Serve on env and checks that the adapter's
// own call log matches what crossed the wire.
func serve(t *testing.T, env *kongtest.Env, opts kongadapter.Options, handle func(exchange.Exchange)) *kongadapter.Adapter {
	t.Helper()
	a := kongadapter.Serve(env.PDK, opts, handle)
	if got, wire := a.Calls(), env.Calls(); !slices.Equal(got, wire) {
		t.Fatalf("adapter recorded %v, wire saw %v", got, wire)
	}
	return a
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("PDK calls:\n got  %v\n want %v", got, want)
	}
}

func TestFlushSendsUpstreamAndResponseHeadersInOneCallEach(t *testing.T) {
	env := kongtest.New(t, get(http.Header{"X-Request-Id": {"abc"}}))
	a := serve(t, env, kongadapter.Options{}, func(ex exchange.Exchange) {
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
		{"reads only", func(ex exchange.Exchange) { ex.Header("a"); ex.Headers(); ex.TooManyHeaders() },
			[]string{kongadapter.CallGetHeaders}},
		{"set then cleared", func(ex exchange.Exchange) {
			ex.SetUpstreamHeader("X-A", "1")
			ex.ClearUpstreamHeader("X-A") // an absent header: one clear, no set
		}, []string{kongadapter.CallClearHeader}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(nil))
			a := serve(t, env, kongadapter.Options{}, tt.handle)
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
	a := serve(t, env, kongadapter.Options{}, func(ex exchange.Exchange) {
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
	a := serve(t, env, kongadapter.Options{}, func(ex exchange.Exchange) {
		ex.ClearUpstreamHeader("x-user-\u212aey")
		ex.SetUpstreamHeader("X-User-Key", "v")
	})
	wantCalls(t, a.Calls(), kongadapter.CallClearHeader, kongadapter.CallSetHeaders)
}

func TestExitMergesBufferedResponseHeadersInOneCall(t *testing.T) {
	env := kongtest.New(t, get(nil))
	a := serve(t, env, kongadapter.Options{}, func(ex exchange.Exchange) {
		ex.SetResponseHeader("X-Request-ID", "rid")
		ex.SetResponseHeader("content-type", "text/plain") // overridden by Deny's
		ex.SetUpstreamHeader("X-Dropped", "1")
		exchange.Deny(ex, 401, "token_missing", "authentication required",
			map[string]string{"WWW-Authenticate": `Bearer realm="edge"`})
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

	first := kongadapter.New(env.PDK, kongadapter.Options{})
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
	later := kongadapter.New(env.PDK, kongadapter.Options{})
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
			a := kongadapter.New(env.PDK, kongadapter.Options{})
			if id, ok := a.Authenticated(); ok || id != nil {
				t.Fatalf("Authenticated = %+v, %v", id, ok)
			}
			if a.Failed() != nil {
				t.Fatalf("a bad value is not a PDK failure: %v", a.Failed())
			}
		})
	}
}

func TestHeaderLimitAsksForOneMoreAndReportsTooMany(t *testing.T) {
	five := http.Header{"A": {"1", "2"}, "B": {"3"}, "C": {"4"}, "D": {"5"}}
	tests := []struct {
		name     string
		opts     kongadapter.Options
		headers  http.Header
		wantMax  int
		wantMany bool
	}{
		{"default limit", kongadapter.Options{}, five, 101, false},
		{"at the limit", kongadapter.Options{MaxHeaders: 5}, five, 6, false},
		{"one value over", kongadapter.Options{MaxHeaders: 4}, five, 5, true},
		{"clamped to Kong's ceiling", kongadapter.Options{MaxHeaders: 5000}, five, 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(tt.headers))
			a := kongadapter.New(env.PDK, tt.opts)
			if got := a.TooManyHeaders(); got != tt.wantMany {
				t.Fatalf("TooManyHeaders = %v", got)
			}
			a.Headers()
			a.Header("a")
			if got := env.HeadersMax(); got != tt.wantMax {
				t.Fatalf("get_headers max = %d, want %d", got, tt.wantMax)
			}
			wantCalls(t, a.Calls(), kongadapter.CallGetHeaders)
		})
	}
}

func TestRequestAttributesAreReadLazilyOnce(t *testing.T) {
	env := kongtest.New(t, get(nil))
	a := kongadapter.New(env.PDK, kongadapter.Options{})
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
			if ex.Header("x-user-id") != "" || ex.TooManyHeaders() {
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
			a := serve(t, env, kongadapter.Options{}, tt.handle)
			wantCalls(t, a.Calls(), tt.want...)
			if env.ClientRes.Status != 500 {
				t.Fatalf("status = %d", env.ClientRes.Status)
			}
			var body struct{ Error struct{ Code string } }
			if err := json.Unmarshal(env.ClientRes.Body, &body); err != nil || body.Error.Code != "edge_error" {
				t.Fatalf("body = %s", env.ClientRes.Body)
			}
			if a.Failed() == nil {
				t.Fatal("Failed() = nil")
			}
			if tt.fail != "" && !errors.Is(a.Failed(), kongadapter.ErrPDK) {
				t.Fatalf("Failed() = %v, want ErrPDK", a.Failed())
			}
		})
	}
}

// Kong closes the PDK event with kong.response.exit, so OnExit is the last
// moment to read the request: it runs before the exit, its reads are
// recorded, and nothing crosses the wire after the exit (kongtest fails
// such a call).
func TestOnExitReadsBeforeTheExit(t *testing.T) {
	type seen struct {
		status   int
		ip, path string
		calls    []string
	}
	tests := []struct {
		name   string
		fail   string
		handle func(exchange.Exchange)
		calls  []string
		hook   *seen // nil: the hook must not run
	}{
		{"denial", "", func(ex exchange.Exchange) {
			ex.Header("authorization")
			exchange.Deny(ex, 401, "token_missing", "no", nil)
		}, []string{kongadapter.CallGetHeaders, kongadapter.CallGetForwardedIP, kongadapter.CallGetPath, kongadapter.CallExit},
			&seen{401, "10.10.10.1", "/v1/models", []string{kongadapter.CallGetHeaders}}},
		{"values read by the handler cost nothing more", "", func(ex exchange.Exchange) {
			ex.Path()
			ex.ClientIP()
			exchange.Deny(ex, 403, "forbidden", "no", nil)
		}, []string{kongadapter.CallGetPath, kongadapter.CallGetForwardedIP, kongadapter.CallExit},
			&seen{403, "10.10.10.1", "/v1/models", []string{kongadapter.CallGetPath, kongadapter.CallGetForwardedIP}}},
		{"fail-closed answer", kongadapter.CallGetHeaders, func(ex exchange.Exchange) {
			ex.Header("authorization")
		}, []string{kongadapter.CallGetHeaders, kongadapter.CallGetForwardedIP, kongadapter.CallGetPath, kongadapter.CallExit},
			&seen{500, "10.10.10.1", "/v1/models", []string{kongadapter.CallGetHeaders}}},
		{"no exit, no hook", "", func(ex exchange.Exchange) {
			ex.SetUpstreamHeader("X-A", "1")
		}, []string{kongadapter.CallSetHeaders}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := kongtest.New(t, get(nil))
			env.Fail[tt.fail] = true
			var got *seen
			opts := kongadapter.Options{OnExit: func(a *kongadapter.Adapter, status int) {
				if got != nil {
					t.Error("OnExit ran twice")
				}
				got = &seen{status: status, calls: a.Calls()}
				got.ip, got.path = a.ClientIP(), a.Path()
			}}
			a := serve(t, env, opts, tt.handle)
			wantCalls(t, a.Calls(), tt.calls...)
			if tt.hook == nil {
				if got != nil {
					t.Fatalf("OnExit ran: %+v", got)
				}
				return
			}
			if got == nil || got.status != tt.hook.status || got.ip != tt.hook.ip || got.path != tt.hook.path || !slices.Equal(got.calls, tt.hook.calls) {
				t.Fatalf("OnExit saw %+v, want %+v", got, tt.hook)
			}
		})
	}
}

func TestOnExitPanicStillExits(t *testing.T) {
	env := kongtest.New(t, get(nil))
	a := serve(t, env, kongadapter.Options{OnExit: func(*kongadapter.Adapter, int) { panic("boom") }}, func(ex exchange.Exchange) {
		exchange.Deny(ex, 401, "token_missing", "no", nil)
	})
	wantCalls(t, a.Calls(), kongadapter.CallExit)
	if env.ClientRes.Status != 401 || a.Failed() == nil {
		t.Fatalf("status %d, Failed %v", env.ClientRes.Status, a.Failed())
	}
}

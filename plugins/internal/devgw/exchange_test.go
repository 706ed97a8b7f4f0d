package devgw

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// The cases mirror internal/kongx's tests: the dev gateway must give the
// plugins the semantics Kong's adapter gives them.

func newTestExchange(t *testing.T, h http.Header) *Exchange {
	t.Helper()
	r := httptest.NewRequest("GET", "http://example.com/v1/models?q=1", nil)
	for k, v := range h {
		r.Header[k] = v
	}
	return newExchange(r, "/v1/models", nil)
}

func TestHeadersAreReadCaseInsensitivelyWithHost(t *testing.T) {
	ex := newTestExchange(t, http.Header{"X-Request-Id": {"abc"}, "X_user_id": {"a", "b"}})
	if ex.Header("X-REQUEST-ID") != "abc" || ex.Header("x-request-id") != "abc" {
		t.Fatalf("Header is not case-insensitive: %v", ex.Headers())
	}
	h := ex.Headers()
	if !slices.Equal(h["x_user_id"], []string{"a", "b"}) || !slices.Equal(h["host"], []string{"example.com"}) {
		t.Fatalf("Headers = %v, want lower-case names and host", h)
	}
	if ex.Method() != "GET" || ex.Path() != "/v1/models" {
		t.Fatalf("method %q path %q (the path never carries the query)", ex.Method(), ex.Path())
	}
}

func TestUpstreamWritesClearThenSet(t *testing.T) {
	tests := []struct {
		name   string
		in     http.Header
		handle func(exchange.Exchange)
		want   http.Header
	}{
		{"sets replace any case", http.Header{"X-A": {"client"}}, func(ex exchange.Exchange) {
			ex.SetUpstreamHeader("X-A", "1")
			ex.SetUpstreamHeader("X-B", "2")
			ex.SetUpstreamHeader("x-a", "3")
		}, http.Header{"X-A": {"3"}, "X-B": {"2"}}},
		{"spoofed identity cleared, edge's set", http.Header{
			"X-User-Id": {"spoofed"}, "X_user_id": {"spoofed"}, "X-Auth-Method": {"apikey"},
		}, func(ex exchange.Exchange) {
			for name := range ex.Headers() {
				if name != "host" {
					ex.ClearUpstreamHeader(name)
				}
			}
			ex.ClearUpstreamHeader("X-USER-ID")
			ex.SetUpstreamHeader("X-User-ID", "u1")
		}, http.Header{"X-User-Id": {"u1"}}},
		{"set then cleared", http.Header{"Keep": {"k"}}, func(ex exchange.Exchange) {
			ex.SetUpstreamHeader("X-A", "1")
			ex.ClearUpstreamHeader("X-A")
		}, http.Header{"Keep": {"k"}}},
		{"cleared then set", http.Header{"X-A": {"client"}}, func(ex exchange.Exchange) {
			ex.ClearUpstreamHeader("x-a")
			ex.SetUpstreamHeader("X-A", "edge")
		}, http.Header{"X-A": {"edge"}}},
		{"no Unicode folding", http.Header{"X-User-Key": {"client"}}, func(ex exchange.Exchange) {
			ex.ClearUpstreamHeader("x-user-\u212aey") // folds to "key" only in Unicode
		}, http.Header{"X-User-Key": {"client"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := newTestExchange(t, tt.in)
			tt.handle(ex)
			out := tt.in.Clone()
			ex.applyUpstream(out)
			if !equalHeaders(out, tt.want) {
				t.Fatalf("upstream headers = %v, want %v", out, tt.want)
			}
		})
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestExitMergesBufferedResponseHeadersAndEndsWrites(t *testing.T) {
	ex := newTestExchange(t, nil)
	ex.SetResponseHeader("X-Request-ID", "rid")
	ex.SetResponseHeader("content-type", "text/plain") // overridden by Deny's
	ex.SetUpstreamHeader("X-Dropped", "1")
	exchange.Deny(ex, 401, "token_missing", "authentication required",
		map[string]string{"WWW-Authenticate": `Bearer realm="edge"`})
	ex.SetResponseHeader("X-After", "1")
	ex.SetAuthenticated(&identity.Identity{Subject: "late"})
	ex.AuthenticateConsumer("late", "", "")
	ex.Exit(200, nil, nil)
	if !ex.Exited() {
		t.Fatal("Exited = false after Exit")
	}
	rec := httptest.NewRecorder()
	ex.writeExit(rec)
	if rec.Code != 401 {
		t.Fatalf("status = %d", rec.Code)
	}
	h := rec.Header()
	if h.Get("X-Request-ID") != "rid" || h.Get("WWW-Authenticate") != `Bearer realm="edge"` ||
		!slices.Equal(h.Values("Content-Type"), []string{exchange.ContentTypeJSON}) || h.Get("X-After") != "" {
		t.Fatalf("exit headers = %v", h)
	}
	var body struct{ Error struct{ Code string } }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != "token_missing" {
		t.Fatalf("body = %s (%v)", rec.Body, err)
	}
	if _, ok := ex.Authenticated(); ok || ex.Consumer().ID != "" {
		t.Fatal("identity or consumer recorded after Exit")
	}
	out := http.Header{}
	ex.applyUpstream(out)
	if len(out) != 0 {
		t.Fatalf("upstream writes survived Exit: %v", out)
	}
}

func TestResponseHeadersOverrideTheUpstreamsAndAddsAppend(t *testing.T) {
	ex := newTestExchange(t, nil)
	ex.SetResponseHeader("X-Request-ID", "edge")
	ex.SetResponseHeader("RateLimit-Remaining", "9")
	ex.addResponseHeader("Vary", "Origin")
	h := http.Header{"X-Request-Id": {"upstream"}, "Vary": {"Accept-Encoding"}, "Content-Type": {"text/plain"}}
	ex.applyResponse(h)
	if !slices.Equal(h.Values("X-Request-Id"), []string{"edge"}) || h.Get("RateLimit-Remaining") != "9" ||
		!slices.Equal(h.Values("Vary"), []string{"Accept-Encoding", "Origin"}) || h.Get("Content-Type") != "text/plain" {
		t.Fatalf("response headers = %v", h)
	}
}

func TestIdentityTravelsInMemoryNeverFromHeaders(t *testing.T) {
	ex := newTestExchange(t, http.Header{"X-User-Id": {"spoofed"}, "X-Auth-Method": {"jwt"}})
	ex.beginPlugin(0)
	if id, ok := ex.Authenticated(); ok || id != nil {
		t.Fatalf("identity before any plugin set one: %+v (request headers are never identity)", id)
	}
	want := &identity.Identity{Subject: "u-1", AuthMethod: identity.MethodJWT}
	ex.SetAuthenticated(want)
	ex.SetAuthenticated(nil) // ignored
	ex.beginPlugin(0)        // a later plugin
	if id, ok := ex.Authenticated(); !ok || id != want {
		t.Fatalf("later plugin sees %v, %v", id, ok)
	}
	ex.SetAuthenticated(&identity.Identity{}) // no subject: no identity, as kongx
	ex.beginPlugin(0)
	if _, ok := ex.Authenticated(); ok {
		t.Fatal("an identity without subject counts")
	}
}

func TestNoPriorIdentityHidesEarlierPluginsIdentity(t *testing.T) {
	ex := newTestExchange(t, nil)
	ex.beginPlugin(0)
	ex.SetAuthenticated(&identity.Identity{Subject: "earlier"})

	ex.beginPlugin(0)
	ex.NoPriorIdentity()
	if id, ok := ex.Authenticated(); ok {
		t.Fatalf("after NoPriorIdentity: %+v", id)
	}
	own := &identity.Identity{Subject: "own"}
	ex.SetAuthenticated(own)
	if id, _ := ex.Authenticated(); id != own {
		t.Fatalf("own identity = %+v", id)
	}

	ex.beginPlugin(0)
	ex.Authenticated() // read first: NoPriorIdentity comes too late, as in kongx
	ex.NoPriorIdentity()
	if id, _ := ex.Authenticated(); id != own {
		t.Fatalf("identity = %+v", id)
	}
}

func TestHeaderLimitIsThePluginsAndCountsValues(t *testing.T) {
	five := http.Header{"A": {"1", "2"}, "B": {"3"}, "C": {"4"}} // + Host: 5 values
	tests := []struct {
		name     string
		max      int
		wantMany bool
	}{
		{"default limit", 0, false},
		{"at the limit", 5, false},
		{"one value over", 4, true},
		{"clamped to Kong's ceiling", 5000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := newTestExchange(t, five)
			ex.beginPlugin(tt.max)
			if got := ex.TooManyHeaders(); got != tt.wantMany {
				t.Fatalf("TooManyHeaders = %v", got)
			}
		})
	}
	ex := newTestExchange(t, five)
	ex.beginPlugin(5000)
	if ex.max != 999 {
		t.Fatalf("limit = %d, want Kong's 999", ex.max)
	}
}

func TestClientIPChoosesTheRightmostUntrustedHop(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	tests := []struct {
		name   string
		peer   string
		xff    []string
		want   string
		trusts []netip.Prefix
	}{
		{"untrusted peer: XFF ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9", trusted},
		{"trusted peer: rightmost untrusted hop", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.7, 10.0.0.9"}, "198.51.100.7", trusted},
		{"several lines are one list", "10.0.0.2:5000", []string{"1.1.1.1", "198.51.100.8"}, "198.51.100.8", trusted},
		{"all hops trusted: leftmost", "10.0.0.2:5000", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1", trusted},
		{"garbage stops the walk", "10.0.0.2:5000", []string{"198.51.100.1, unknown"}, "10.0.0.2", trusted},
		{"nothing trusted by default", "10.0.0.2:5000", []string{"198.51.100.1"}, "10.0.0.2", nil},
		{"IPv6 peer", "[2001:db8::1]:443", []string{"2001:db9::5"}, "2001:db9::5", trusted},
		{"mapped IPv4 peer", "[::ffff:10.0.0.2]:80", []string{"198.51.100.3"}, "198.51.100.3", trusted},
		{"unusable peer", "pipe", nil, "", trusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			r.Header["X-Forwarded-For"] = tt.xff
			ex := newExchange(r, "/", tt.trusts)
			if got := ex.ClientIP(); got != tt.want {
				t.Fatalf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAuthenticateConsumerIsRecordedForTheLog(t *testing.T) {
	ex := newTestExchange(t, nil)
	ex.AuthenticateConsumer("", "x", "y") // no consumer id: ignored, as kongx
	if ex.Consumer().ID != "" {
		t.Fatal("empty consumer recorded")
	}
	ex.AuthenticateConsumer("sub-1", "alice", "kid12345")
	if got := ex.Consumer(); got != (Consumer{"sub-1", "alice", "kid12345"}) {
		t.Fatalf("consumer = %+v", got)
	}
}

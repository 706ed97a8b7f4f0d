package exchange

import (
	"testing"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

func TestFakeLowercasesHeaderNamesWithASCIIRulesOnly(t *testing.T) {
	f := NewFake("GET", "/", map[string][]string{
		"X-Request-ID":   {"a"},
		"x-request-id":   {"b"},
		"X-User-\u0130D": {"c"}, // İ is not ASCII: kept as is
	})
	if got := f.Header("X-REQUEST-ID"); got != "a" && got != "b" {
		t.Fatalf("Header = %q", got)
	}
	if n := len(f.Headers()["x-request-id"]); n != 2 {
		t.Fatalf("merged values = %d, want 2", n)
	}
	if _, ok := f.Headers()["x-user-\u0130d"]; !ok {
		t.Fatalf("non-ASCII name changed: %v", f.Headers())
	}
}

func TestCountValuesCountsLines(t *testing.T) {
	f := NewFake("GET", "/", map[string][]string{"a": {"1", "2"}, "b": {"3"}})
	if n := CountValues(f.Headers()); n != 3 {
		t.Fatalf("CountValues = %d, want 3", n)
	}
}

func TestMaxHeadersClampAndOption(t *testing.T) {
	for in, want := range map[int]int{-1: DefaultMaxHeaders, 0: DefaultMaxHeaders, 1: 1, 999: 999, 1000: MaxMaxHeaders, 5000: MaxMaxHeaders} {
		if got := ClampMaxHeaders(in); got != want {
			t.Errorf("ClampMaxHeaders(%d) = %d, want %d", in, got, want)
		}
	}
	for _, bad := range []int{-1, 1000} {
		if _, err := MaxHeadersOption(bad); err == nil {
			t.Errorf("max_headers %d accepted", bad)
		}
	}
	if n, err := MaxHeadersOption(0); n != DefaultMaxHeaders || err != nil {
		t.Errorf("max_headers 0 = %d, %v", n, err)
	}
}

func TestExitHeadersMergeUnderTheExitsOwn(t *testing.T) {
	got := ExitHeaders([]Header{{"X-Request-ID", "r"}, {"content-type", "text/plain"}},
		map[string]string{"Content-Type": ContentTypeJSON})
	if len(got) != 2 || got["X-Request-ID"] != "r" || got["Content-Type"] != ContentTypeJSON {
		t.Fatalf("ExitHeaders = %v", got)
	}
}

func TestFakeUpstreamWritesReplaceInAnyASCIICaseOnly(t *testing.T) {
	f := NewFake("GET", "/", nil)
	f.SetUpstreamHeader("X-Key", "1")
	f.SetUpstreamHeader("x-key", "2")
	f.SetUpstreamHeader("X-\u212Aey", "kelvin") // Kelvin sign: a different name
	if len(f.Upstream) != 2 || f.Upstream["x-key"] != "2" {
		t.Fatalf("Upstream = %v", f.Upstream)
	}
	f.ClearUpstreamHeader("X-KEY")
	if _, ok := f.UpstreamHeader("x-key"); ok {
		t.Fatal("clear must drop an earlier set")
	}
	if !f.WasCleared("X-KEY") {
		t.Fatalf("Cleared = %v", f.Cleared)
	}
}

func TestFakeExitMergesResponseHeadersAndIgnoresLaterWrites(t *testing.T) {
	f := NewFake("GET", "/", nil)
	f.SetResponseHeader("X-Request-ID", "r1")
	f.SetResponseHeader("content-type", "text/plain")
	f.Exit(401, ErrorBody("token_missing", "authentication required"), map[string]string{"WWW-Authenticate": "Bearer", "Content-Type": ContentTypeJSON})
	f.SetUpstreamHeader("X-After", "1")
	f.SetResponseHeader("X-After", "1")
	f.SetAuthenticated(&identity.Identity{Subject: "s"})
	f.Exit(200, nil, nil)

	if !f.Exited() || f.ExitStatus != 401 {
		t.Fatalf("status = %d", f.ExitStatus)
	}
	want := map[string]string{
		"X-Request-ID":     "r1",
		"Content-Type":     ContentTypeJSON,
		"WWW-Authenticate": "Bearer",
	}
	if len(f.ExitHeaders) != len(want) {
		t.Fatalf("ExitHeaders = %v", f.ExitHeaders)
	}
	for k, v := range want {
		if f.ExitHeaders[k] != v {
			t.Fatalf("ExitHeaders[%s] = %q, want %q (all: %v)", k, f.ExitHeaders[k], v, f.ExitHeaders)
		}
	}
	if len(f.Upstream) != 0 || f.Identity != nil || f.Response["X-After"] != "" {
		t.Fatal("writes after Exit must be ignored")
	}
}

func TestFakeAuthenticatedReturnsWhatWasSet(t *testing.T) {
	f := NewFake("GET", "/", map[string][]string{"X-User-ID": {"spoofed"}})
	if _, ok := f.Authenticated(); ok {
		t.Fatal("no identity: request headers are never an identity")
	}
	id := &identity.Identity{Subject: "u1", AuthMethod: identity.MethodJWT}
	f.SetAuthenticated(id)
	got, ok := f.Authenticated()
	if !ok || got != id {
		t.Fatalf("Authenticated = %v, %v", got, ok)
	}
}

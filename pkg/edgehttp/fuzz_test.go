package edgehttp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/requestid"
)

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer", "Bearer ", "Bearerx", "Basic a", " Bearer\t a.b.c ", "Bearer sk_live_x", "\x00Bearer a", "BEARER é"} {
		f.Add(s, "")
		f.Add(s, "Bearer y")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{}
		h.Add("Authorization", a)
		if b != "" {
			h.Add("Authorization", b)
		}
		tok, st := edgehttp.BearerToken(h)
		switch st {
		case edgehttp.CredDuplicate:
			if b == "" || tok != "" {
				t.Fatalf("duplicate for one line or with a token: %q", tok)
			}
		case edgehttp.CredAbsent:
			if tok != "" {
				t.Fatalf("absent with a token %q", tok)
			}
		case edgehttp.CredFound:
			if b != "" {
				t.Fatal("found with two lines")
			}
			if tok != strings.TrimSpace(tok) {
				t.Fatalf("untrimmed token %q", tok)
			}
			if !strings.Contains(a, tok) {
				t.Fatalf("token %q not from the header %q", tok, a)
			}
			// the token round-trips
			h2 := http.Header{"Authorization": {"Bearer " + tok}}
			if tok2, st2 := edgehttp.BearerToken(h2); st2 != edgehttp.CredFound || tok2 != tok {
				t.Fatalf("round trip %q -> %q %d", tok, tok2, st2)
			}
		}
	})
}

func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"abc", "", "a b", "é", strings.Repeat("x", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"X-Request-Id": {s}}
		r := &http.Request{Header: h}
		got := edgehttp.RequestID(r)
		if !requestid.Valid(got) {
			t.Fatalf("invalid id %q", got)
		}
		if requestid.Valid(s) != (got == s) {
			t.Fatalf("%q -> %q", s, got)
		}
	})
}

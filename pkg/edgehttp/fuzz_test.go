package edgehttp_test

import (
	"errors"
	"net/http"
	"net/url"
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
	for _, s := range []string{"abc", "", "a b", "é", strings.Repeat("x", 200), "sk_rt1234", "eyJrt.ab12.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"X-Request-Id": {s}}
		r := &http.Request{Header: h}
		got := edgehttp.RequestID(r)
		if !requestid.Valid(got) || requestid.LooksLikeCredential(got) {
			t.Fatalf("invalid id %q", got)
		}
		if requestid.Valid(s) != (got == s) {
			t.Fatalf("%q -> %q", s, got)
		}
	})
}

// The assertion header never panics, never yields an identity without a
// verified signature, and refuses everything but one well-formed header line.
func FuzzEdgeIdentityHeader(f *testing.F) {
	e := newEdge(f)
	good := e.sign(f, userA, "llm-api", http.MethodGet, "/v1/models")
	for _, s := range []string{good, " " + good + " ", "", "a.b.c", "x-user-id: root", good[:len(good)-1], good + "A", strings.Repeat("a.", 9000)} {
		f.Add(s, "", "/v1/models")
		f.Add(s, good, "/v1/models")
		f.Add(s, "", "/v1/models/")
	}
	auth := &edgehttp.EdgeIdentity{Verifier: e.verifier(f, "llm-api")}
	f.Fuzz(func(t *testing.T, a, second, path string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}
		r.Header.Add("X-Edge-Identity", a)
		if second != "" {
			r.Header.Add("X-Edge-Identity", second)
		}
		r.Header.Set("X-User-ID", "mallory")
		id, err := auth.Authenticate(r)
		if err == nil {
			if second != "" || path != "/v1/models" || strings.TrimSpace(a) != good {
				t.Fatalf("accepted %q (second %q, path %q)", a, second, path)
			}
			if id.Subject != userA.Subject {
				t.Fatalf("identity %q, want the signed one", id.Subject)
			}
			return
		}
		var rej *edgehttp.Rejection
		if !errors.As(err, &rej) || rej.Status != http.StatusUnauthorized {
			t.Fatalf("refusal %v is not a 401 rejection", err)
		}
		if strings.Contains(rej.Detail+rej.Message, a) && len(a) > 8 {
			t.Fatal("the rejection repeats the assertion")
		}
	})
}

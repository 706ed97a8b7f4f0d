package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{"https://example.com/a?b=c", true},
		{"http://example.com:8080", true},
		{"https://example.com/a#frag", true},
		{"HTTPS://EXAMPLE.COM/", true},
		{"", false},
		{"example.com", false},
		{"//example.com/", false},
		{"ftp://example.com/", false},
		{"file:///etc/passwd", false},
		{"gopher://example.com/", false},
		{"http://user:pw@example.com/", false},
		{"http://user@example.com/", false},
		{"http:example.com", false},
		{"http:///path", false},
		{"http://exa mple.com/", false},
		{"http://example.com/\n", false},
		{"https://example.com/" + strings.Repeat("a", MaxURLLen), false},
	} {
		u, err := ParseURL(tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("%.60q: err %v", tc.raw, err)
			continue
		}
		if err == nil && u.Fragment != "" {
			t.Errorf("%q: fragment kept", tc.raw)
		}
		if err != nil && !errors.Is(err, ErrInvalidURL) {
			t.Errorf("%q: err %v is not ErrInvalidURL", tc.raw, err)
		}
	}
}

func TestTextual(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/plain; charset=utf-8": true, "text/html": true, "application/json": true, "application/ld+json": true,
		"application/atom+xml": true, "application/xml": true, "image/svg+xml": true,
		"image/png": false, "application/octet-stream": false, "application/pdf": false, "": false, "text": false,
	} {
		if Textual(ct) != want {
			t.Errorf("Textual(%q) = %v", ct, !want)
		}
	}
}

func newFetcher(t *testing.T, max int, h http.HandlerFunc) (*Fetcher, string) {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f, err := New(Config{Client: srv.Client(), MaxBytes: max, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return f, srv.URL
}

func TestFetchReturnsTheFirstBytesAsValidUTF8(t *testing.T) {
	f, url := newFetcher(t, 5, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "abcdé and much more") // é straddles byte 5
	})
	p, err := f.Fetch(context.Background(), url+"/x#frag")
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != "abcd" || !p.Truncated || p.Bytes != 4 || p.Status != 200 || strings.Contains(p.URL, "#") {
		t.Fatalf("%+v", p)
	}
}

func TestFetchSniffsAMissingContentType(t *testing.T) {
	f, url := newFetcher(t, 1024, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // no sniffing by net/http
		if r.URL.Path == "/bin" {
			_, _ = w.Write([]byte{0, 1, 2, 3, 0xff, 0xfe})
			return
		}
		fmt.Fprint(w, "plain words")
	})
	if p, err := f.Fetch(context.Background(), url+"/txt"); err != nil || p.Text != "plain words" || p.Truncated {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := f.Fetch(context.Background(), url+"/bin"); !errors.Is(err, ErrNotText) {
		t.Fatalf("binary: %v", err)
	}
}

func TestFetchErrorsAreClassified(t *testing.T) {
	blockedErr := errors.New("blocked by the guard")
	f, err := New(Config{Client: doerFunc(func(*http.Request) (*http.Response, error) { return nil, blockedErr }),
		Blocked: func(err error) bool { return errors.Is(err, blockedErr) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), "http://10.0.0.1/?token=abc"); !errors.Is(err, ErrBlocked) {
		t.Fatalf("err %v", err)
	}
	slow, url := newFetcher(t, 10, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	if _, err := slow.Fetch(context.Background(), url); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("slow: %v", err)
	}
	if _, err := slow.Fetch(context.Background(), "file:///etc/passwd"); !errors.Is(err, ErrInvalidURL) {
		t.Fatalf("file: %v", err)
	}
}

func TestFetchErrorsDoNotRepeatTheQuery(t *testing.T) {
	f, err := New(Config{Client: &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("dial failed")
	})}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(context.Background(), "http://example.com/?token=supersecret")
	if err == nil || strings.Contains(err.Error(), "supersecret") {
		t.Fatalf("err %v", err)
	}
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://example.com/", "http://[::1]:80/", "http://u@h/", "javascript:alert(1)", "http://%zz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseURL(raw)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" || u.Fragment != "" {
			t.Fatalf("accepted %q as %#v", raw, u)
		}
	})
}

package llmproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmproxy"
	"github.com/rs/zerolog"
)

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// echoUpstream answers 200 with the body it received.
var echoUpstream = roundTrip(func(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: r}, nil
})

func TestBadConfigIsRefused(t *testing.T) {
	for _, u := range []string{"", "vllm:8000", "ftp://vllm/v1", "http://user:pw@vllm/v1", "http://vllm/v1?k=1", "http:///v1"} {
		if _, err := llmproxy.New(llmproxy.Config{UpstreamURL: u}); !errors.Is(err, llmproxy.ErrInvalidConfig) {
			t.Errorf("%q: %v", u, err)
		}
	}
	if _, err := llmproxy.New(llmproxy.Config{UpstreamURL: "http://vllm/v1", Timeout: -1}); !errors.Is(err, llmproxy.ErrInvalidConfig) {
		t.Errorf("negative timeout: %v", err)
	}
}

func TestUpstreamPathKeepsTheBaseURLPath(t *testing.T) {
	for base, want := range map[string]string{
		"http://vllm:8000/v1":         "/v1/chat/completions",
		"http://vllm:8000/v1/":        "/v1/chat/completions",
		"http://vllm:8000/openai/v1/": "/openai/v1/chat/completions",
		"http://vllm:8000":            "/chat/completions",
	} {
		var got string
		p, err := llmproxy.New(llmproxy.Config{UpstreamURL: base, Logger: zerolog.Nop(),
			Transport: roundTrip(func(r *http.Request) (*http.Response, error) { got = r.URL.Path; return echoUpstream(r) })})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader([]byte(`{}`))))
		if w.Code != 200 || got != want {
			t.Errorf("%s: %d, upstream path %q, want %q", base, w.Code, got, want)
		}
	}
}

// FuzzRequestBody: any body is forwarded unchanged when it is one JSON
// object within the limit, refused with 400 (not JSON, not an object) or 413
// (too long) otherwise — never a 5xx, never altered.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"model":"m","stream":true}`, `{`, `[]`, `null`, "\xff", ` {"a":"\u0000"} `, `{"a":1}{}`, ``} {
		f.Add([]byte(s))
	}
	const limit = 4 << 10
	p, err := llmproxy.New(llmproxy.Config{UpstreamURL: "http://upstream/v1", MaxBodyBytes: limit, Transport: echoUpstream, Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body)))
		switch {
		case len(body) > limit:
			if w.Code != 413 {
				t.Fatalf("%d bytes: %d", len(body), w.Code)
			}
		case llmproxy.IsJSONObject(body):
			if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), body) {
				t.Fatalf("valid object: %d, forwarded %q", w.Code, w.Body.Bytes())
			}
		default:
			if w.Code != 400 {
				t.Fatalf("%q: %d", body, w.Code)
			}
		}
	})
}

func BenchmarkNonStreamingExchange(b *testing.B) {
	p, err := llmproxy.New(llmproxy.Config{UpstreamURL: "http://upstream/v1", Transport: echoUpstream, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hello"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body)))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

package devgw

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

// seen is what a recording upstream received.
type seen struct {
	Method, Path, RawPath, Query, Host string
	Header                             http.Header
	Body                               []byte
	ContentLength                      int64
}

// upstream is an httptest server that records every request and answers
// with handler (default: 200 "ok" with an X-Upstream header).
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newUpstream(t testing.TB, handler http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	if handler == nil {
		handler = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Upstream", "yes")
			_, _ = io.WriteString(w, "ok")
		}
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header.Clone(), body, r.ContentLength})
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// last returns the last request received; it fails when there is none.
func (u *upstream) last(t testing.TB) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newGateway builds a Gateway from kong.yml text; opts.Config and
// opts.Logger are filled in (the log goes to the returned buffer).
func newGateway(t testing.TB, yml string, opts Options) (*Gateway, *logBuffer) {
	t.Helper()
	c, err := kongconf.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	l := zerolog.New(logs)
	opts.Config, opts.Logger = c, &l
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g, logs
}

// serve runs one request through g in-process.
func serve(g http.Handler, r *http.Request) *httptest.ResponseRecorder {
	if r.RemoteAddr == "" {
		r.RemoteAddr = "192.0.2.1:1234"
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, r)
	return rec
}

package devgw

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const sizeYML = `_format_version: "3.0"
services:
- name: svc
  url: %s
  routes:
  - name: r
    paths: [/up]
    strip_path: false
    plugins:
    - name: request-size-limiting
      config: %s
`

// countingBody counts what is read of a request body.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return nil }

func TestRequestSizeLimitingAsKong(t *testing.T) {
	up := newUpstream(t, nil)
	g, _ := newGateway(t, fmt.Sprintf(sizeYML, up.URL, "{allowed_payload_size: 1, size_unit: kilobytes}"), Options{})
	const limit = 1024
	tests := []struct {
		name     string
		size     int
		declared bool // Content-Length (else chunked)
		expect   bool // Expect: 100-continue
		status   int
		maxRead  int64
	}{
		{"declared over the limit: refused unread", limit + 1, true, false, 413, 0},
		{"declared over with Expect: 417", limit + 1, true, true, 417, 0},
		{"declared at the limit", limit, true, false, 200, limit},
		{"chunked over: read one byte past the limit", 10 * limit, false, false, 413, limit + 1},
		{"chunked at the limit: forwarded with its length", limit, false, false, 200, limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			body := &countingBody{r: strings.NewReader(strings.Repeat("x", tt.size))}
			r := httptest.NewRequest("POST", "/up", nil)
			r.Body = body
			r.ContentLength = -1
			if tt.declared {
				r.ContentLength = int64(tt.size)
				r.Header.Set("Content-Length", fmt.Sprint(tt.size))
			}
			if tt.expect {
				r.Header.Set("Expect", "100-continue")
			}
			rec := serve(g, r)
			if rec.Code != tt.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if got := body.read.Load(); got > tt.maxRead {
				t.Fatalf("read %d body bytes, at most %d allowed", got, tt.maxRead)
			}
			if tt.status != 200 {
				if rec.Body.String() != `{"message":"Request size limit exceeded"}` || up.count() != before {
					t.Fatalf("refusal: %s, upstream calls %d→%d", rec.Body, before, up.count())
				}
				return
			}
			got := up.last(t)
			if len(got.Body) != tt.size || got.ContentLength != int64(tt.size) {
				t.Fatalf("upstream got %d bytes, Content-Length %d", len(got.Body), got.ContentLength)
			}
		})
	}
}

func TestRequestSizeLimitingOptions(t *testing.T) {
	up := newUpstream(t, nil)
	g, _ := newGateway(t, fmt.Sprintf(sizeYML, up.URL, "{allowed_payload_size: 10, size_unit: bytes, require_content_length: true}"), Options{})
	r := httptest.NewRequest("POST", "/up", strings.NewReader("x"))
	r.ContentLength = -1
	if rec := serve(g, r); rec.Code != 411 || !strings.Contains(rec.Body.String(), "Content-Length") {
		t.Fatalf("require_content_length: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(g, httptest.NewRequest("POST", "/up", strings.NewReader(strings.Repeat("x", 11)))); rec.Code != 413 {
		t.Fatalf("bytes unit: %d", rec.Code)
	}
	// Kong's defaults: 128 megabytes.
	s, err := newSizeLimit(sizeLimitConfig{})
	if err != nil || s.limit != 128<<20 {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	if _, err := newSizeLimit(sizeLimitConfig{SizeUnit: "gigabytes"}); err == nil {
		t.Fatal("an unknown size_unit was accepted")
	}
}

// TestOversizedBodyIsRefusedBeforeItIsSent speaks HTTP/1.1 on a socket: the
// client announces a large body and sends none; the 413 must come anyway.
func TestOversizedBodyIsRefusedBeforeItIsSent(t *testing.T) {
	up := newUpstream(t, nil)
	g, _ := newGateway(t, fmt.Sprintf(sizeYML, up.URL, "{allowed_payload_size: 1, size_unit: megabytes}"), Options{})
	srv := httptest.NewServer(g)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 50<<20)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || up.count() != 0 {
		t.Fatalf("status %d, upstream calls %d", resp.StatusCode, up.count())
	}
}

func TestGatewayBodyCap(t *testing.T) {
	up := newUpstream(t, nil)
	g, _ := newGateway(t, fmt.Sprintf(simpleYML, up.URL), Options{MaxBodyBytes: 10})
	if rec := serve(g, httptest.NewRequest("POST", "/v1/models", strings.NewReader(strings.Repeat("x", 11)))); rec.Code != 413 ||
		rec.Body.String() != `{"message":"Payload too large"}` {
		t.Fatalf("declared: %d %s", rec.Code, rec.Body)
	}
	r := httptest.NewRequest("POST", "/v1/models", strings.NewReader(strings.Repeat("x", 11)))
	r.ContentLength = -1
	if rec := serve(g, r); rec.Code != 413 {
		t.Fatalf("chunked: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(g, httptest.NewRequest("POST", "/v1/models", strings.NewReader("0123456789"))); rec.Code != 200 ||
		string(up.last(t).Body) != "0123456789" {
		t.Fatalf("at the cap: %d", rec.Code)
	}
}

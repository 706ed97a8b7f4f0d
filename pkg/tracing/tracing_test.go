package tracing_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/edgeguard/edgeguard/pkg/tracing"
)

// Kong's opentelemetry plugin (header_type w3c) sends this shape.
const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
	traceparent = "00-" + parentTrace + "-" + parentSpan + "-01"
	secret      = "sk_live_TOPSECRETvalue0123456789"
)

// otlpReceiver is a fake OTLP/HTTP collector: it decodes the protobuf
// export requests posted to /v1/traces.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []string // service.name of each resource
	paths []string
}

func newReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rcv := &otlpReceiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		var req collectorpb.ExportTraceServiceRequest
		if r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, &req) != nil {
			http.Error(w, "not an OTLP protobuf export", 400)
			return
		}
		rcv.mu.Lock()
		rcv.paths = append(rcv.paths, r.URL.Path)
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					rcv.res = append(rcv.res, a.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				rcv.spans = append(rcv.spans, ss.Spans...)
			}
		}
		rcv.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

// record installs a span recorder as the global provider.
func record(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return sr
}

func TestOffByDefaultInstallsNothingAndStartsNoGoroutine(t *testing.T) {
	before := otel.GetTracerProvider()
	n := runtime.NumGoroutine()
	stop, err := tracing.Start(tracing.Config{}, "llm-api")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if otel.GetTracerProvider() != before {
		t.Fatal("an unset endpoint installed a tracer provider")
	}
	if got := runtime.NumGoroutine(); got > n {
		t.Fatalf("goroutines %d -> %d with tracing off", n, got)
	}

	// Off, Kong's trace still passes through to the upstream unchanged.
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer up.Close()
	in := httptest.NewRequest("GET", "/v1/models", nil)
	in.Header.Set("Traceparent", traceparent)
	ctx, span := tracing.StartServer(in, "/v1/models")
	req, _ := http.NewRequestWithContext(ctx, "GET", up.URL, nil)
	res, err := (&http.Client{Transport: tracing.Transport(nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	tracing.EndServer(span, 200)
	if got.Get("Traceparent") != traceparent {
		t.Fatalf("with tracing off the upstream got traceparent %q, want %q", got.Get("Traceparent"), traceparent)
	}
}

// FuzzStartServer: whatever trace headers and method a client sends, the
// span name stays bounded (a known method or _OTHER, and the route).
func FuzzStartServer(f *testing.F) {
	for _, s := range [][3]string{
		{traceparent, "kong=1", "GET"},
		{"00-00000000000000000000000000000000-0000000000000000-01", "", "POST"},
		{"ff-" + parentTrace + "-" + parentSpan + "-01", "a=b,c=d", "DELETE"},
		{"00-" + parentTrace + "-" + parentSpan + "-01-extra\r\nX-Injected: 1", strings.Repeat("k=v,", 100), "BREW"},
		{"00-" + strings.Repeat("z", 32) + "-" + parentSpan + "-01", "=,=,", "GET /admin HTTP/1.1"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	otel.SetTracerProvider(tp)
	f.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, tp, ts, method string) {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Method = method
		r.Header["Traceparent"] = []string{tp}
		r.Header["Tracestate"] = []string{ts}
		_, span := tracing.StartServer(r, "/x")
		tracing.EndServer(span, 200)
		ended := sr.Ended()
		if len(ended) == 0 {
			t.Fatal("no span ended")
		}
		// The span name is a standard method or _OTHER, then the route:
		// nothing of the hostile method or headers gets in.
		name := ended[len(ended)-1].Name()
		m, route, _ := strings.Cut(name, " ")
		if route != "/x" || (m != "_OTHER" && (m != method || tracing.Method(m) != m)) {
			t.Fatalf("span name %q for method %q", name, method)
		}
	})
}

func TestConfigRefusals(t *testing.T) {
	for _, c := range []tracing.Config{
		{Endpoint: "collector:4318"},
		{Endpoint: "ftp://collector"},
		{Endpoint: "http://u:p@collector:4318"},
		{Endpoint: "http://collector:4318?token=" + secret},
		{Sampler: "sometimes"},
		{SamplerArg: 2},
	} {
		err := c.Validate()
		if err == nil {
			t.Errorf("%+v accepted", c)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "u:p") {
			t.Errorf("error shows the endpoint's secret: %v", err)
		}
	}
}

// TestExportsOverOTLPHTTPWithKongsTraceAsParent: the real exporter, a fake
// collector decoding the protobuf, a request carrying Kong's traceparent.
func TestExportsOverOTLPHTTPWithKongsTraceAsParent(t *testing.T) {
	rcv := newReceiver(t)
	tp, err := tracing.NewProvider(tracing.Config{Endpoint: rcv.URL, Sampler: "parentbased_always_on", SamplerArg: 1}, "llm-api")
	if err != nil {
		t.Fatal(err)
	}
	otel.SetTracerProvider(tp)
	r := httptest.NewRequest("POST", "/v1/chat/completions?api_key="+secret, nil)
	r.Header.Set("Traceparent", traceparent)
	r.Header.Set("Authorization", "Bearer "+secret)
	_, span := tracing.StartServer(r, "/v1/chat/completions")
	tracing.EndServer(span, 200)
	if err := tp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = tp.Shutdown(t.Context())
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.spans) != 1 || len(rcv.paths) == 0 || rcv.paths[0] != "/v1/traces" || rcv.res[0] != "llm-api" {
		t.Fatalf("received %d spans at %v for %v", len(rcv.spans), rcv.paths, rcv.res)
	}
	s := rcv.spans[0]
	if hex.EncodeToString(s.TraceId) != parentTrace || hex.EncodeToString(s.ParentSpanId) != parentSpan {
		t.Fatalf("trace %x parent %x: not Kong's", s.TraceId, s.ParentSpanId)
	}
	if s.Name != "POST /v1/chat/completions" || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Fatalf("span %q kind %v", s.Name, s.Kind)
	}
	raw, _ := proto.Marshal(s)
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte("api_key")) {
		t.Fatal("a credential or the query reached the exported span")
	}
}

func TestServerSpanIsChildOfTraceparentAndCarriesNoHeaderOrQuery(t *testing.T) {
	sr := record(t)
	r := httptest.NewRequest("GET", "/v1/media/jan_abc/content?sig="+secret, nil)
	r.Header.Set("Traceparent", traceparent)
	r.Header.Set("Tracestate", "kong=1")
	r.Header.Set("X-API-Key", secret)
	r.Header.Set("Cookie", "session="+secret)
	_, span := tracing.StartServer(r, "/v1/media/:id/content")
	tracing.EndServer(span, 503)
	ended := sr.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans", len(ended))
	}
	s := ended[0]
	if s.Parent().TraceID().String() != parentTrace || s.Parent().SpanID().String() != parentSpan || !s.Parent().IsRemote() {
		t.Fatalf("parent %v", s.Parent())
	}
	if s.SpanContext().TraceState().Get("kong") != "1" {
		t.Fatal("tracestate lost")
	}
	if s.Name() != "GET /v1/media/:id/content" || s.SpanKind() != trace.SpanKindServer || s.Status().Code.String() != "Error" {
		t.Fatalf("span %q kind %v status %v", s.Name(), s.SpanKind(), s.Status())
	}
	for _, a := range s.Attributes() {
		v := a.Value.String()
		if strings.Contains(v, secret) || strings.Contains(v, "jan_abc") || strings.Contains(v, "sig") {
			t.Fatalf("attribute %s=%s carries the raw path, query or a header", a.Key, v)
		}
	}
}

func TestUnknownMethodsDoNotNameSpans(t *testing.T) {
	sr := record(t)
	r := httptest.NewRequest("GET", "/x", nil)
	r.Method = "BREW" + secret
	_, span := tracing.StartServer(r, "unmatched")
	tracing.EndServer(span, 404)
	if n := sr.Ended()[0].Name(); n != "_OTHER unmatched" {
		t.Fatalf("name %q", n)
	}
}

func TestClientSpanPropagatesTheTrace(t *testing.T) {
	sr := record(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		_, _ = io.WriteString(w, "data: 1\n\n")
	}))
	defer up.Close()
	in := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	in.Header.Set("Traceparent", traceparent)
	ctx, server := tracing.StartServer(in, "/v1/chat/completions")
	hc := &http.Client{Transport: tracing.Transport(nil)}
	req, _ := http.NewRequestWithContext(ctx, "POST", up.URL+"/v1/chat/completions?key="+secret, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Traceparent") != "" {
		t.Fatal("the caller's request was modified")
	}
	if len(sr.Ended()) != 0 {
		t.Fatal("client span ended before its body was read")
	}
	_, _ = io.ReadAll(res.Body)
	_ = res.Body.Close()
	tracing.EndServer(server, 200)

	ended := sr.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans", len(ended))
	}
	client := ended[0]
	if client.SpanKind() != trace.SpanKindClient || client.Name() != "HTTP POST" || client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatalf("client span %q kind %v parent %v", client.Name(), client.SpanKind(), client.Parent())
	}
	want := "00-" + parentTrace + "-" + client.SpanContext().SpanID().String() + "-01"
	if tp := got.Get("Traceparent"); tp != want {
		t.Fatalf("upstream got traceparent %q, want %q", tp, want)
	}
	for _, a := range client.Attributes() {
		if v := a.Value.String(); strings.Contains(v, secret) || strings.Contains(v, "/v1/") {
			t.Fatalf("client attribute %s=%s", a.Key, v)
		}
	}
}

func TestTransportWithoutTraceContextAddsNothing(t *testing.T) {
	sr := record(t)
	var got http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer up.Close()
	res, err := (&http.Client{Transport: tracing.Transport(nil)}).Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if got.Get("Traceparent") != "" || len(sr.Ended()) != 0 {
		t.Fatalf("traceparent %q, %d spans", got.Get("Traceparent"), len(sr.Ended()))
	}
}

func TestTransportErrorIsNotRecorded(t *testing.T) {
	sr := record(t)
	in := httptest.NewRequest("GET", "/v1/models", nil)
	in.Header.Set("Traceparent", traceparent)
	ctx, server := tracing.StartServer(in, "/v1/models")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:1/x?token="+secret, nil)
	c := &http.Client{Transport: tracing.Transport(nil), Timeout: 5 * time.Second}
	if _, err := c.Do(req); err == nil {
		t.Fatal("port 1 answered")
	}
	tracing.EndServer(server, 502)
	for _, s := range sr.Ended() {
		if strings.Contains(s.Status().Description, secret) || len(s.Events()) > 0 {
			t.Fatalf("span %q records the error: %v %v", s.Name(), s.Status(), s.Events())
		}
	}
}

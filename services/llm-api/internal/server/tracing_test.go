package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestModelCallIsTracedUnderKongsTrace: Kong's traceparent is the parent of
// llm-api's server span (named by the route template), the upstream call is
// a client span under it, and the model server receives the trace; no
// credential the client or the service sent is a span attribute.
func TestModelCallIsTracedUnderKongsTrace(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })

	var mu sync.Mutex
	var upstreamTP string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamTP = r.Header.Get("Traceparent")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[]}`))
	}))
	defer up.Close()
	h := newHarness(t, options{llm: newProxy(t, up.URL, nil)})
	tok := h.token("alice", "user")
	const kongTrace, kongSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	hdr := map[string]string{"Authorization": "Bearer " + tok, "Traceparent": "00-" + kongTrace + "-" + kongSpan + "-01"}
	for k, v := range clientCredentials {
		hdr[k] = v
	}
	if r := serve(h.public, "GET", "/v1/models?api_key=query-secret", nil, hdr); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var server, client sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			client = s
		}
		for _, a := range s.Attributes() {
			v := a.Value.String()
			for _, secret := range append([]string{tok, upstreamKey, "query-secret"}, valuesOf(clientCredentials)...) {
				if strings.Contains(v, secret) {
					t.Errorf("span %q attribute %s carries a credential", s.Name(), a.Key)
				}
			}
		}
	}
	if server == nil || client == nil {
		t.Fatalf("spans: %v", sr.Ended())
	}
	if server.Name() != "GET /v1/models" || server.Parent().TraceID().String() != kongTrace || server.Parent().SpanID().String() != kongSpan {
		t.Fatalf("server span %q parent %v", server.Name(), server.Parent())
	}
	if client.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatal("the upstream call is not under the request's span")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "00-" + kongTrace + "-" + client.SpanContext().SpanID().String() + "-01"; upstreamTP != want {
		t.Fatalf("upstream got traceparent %q, want %q", upstreamTP, want)
	}
}

func valuesOf(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

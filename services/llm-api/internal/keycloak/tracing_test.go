package keycloak_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeguard/edgeguard/pkg/tracing"
)

// TestKeycloakCallsCarryTheRequestsTrace: the calls made for a traced
// request (service-account login, user, roles) are client spans under its
// server span, and Keycloak receives the trace in traceparent.
func TestKeycloakCallsCarryTheRequestsTrace(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })

	f, src, _ := setup(t)
	const kongTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	in := httptest.NewRequest("POST", "/auth/api-keys", nil)
	in.Header.Set("Traceparent", "00-"+kongTrace+"-00f067aa0ba902b7-01")
	ctx, server := tracing.StartServer(in, "/auth/api-keys")
	if _, err := src.Owner(ctx, "u-alice"); err != nil {
		t.Fatal(err)
	}
	tracing.EndServer(server, 201)

	f.mu.Lock()
	tps := append([]string(nil), f.traceparents...)
	f.mu.Unlock()
	if len(tps) < 2 {
		t.Fatalf("%d Keycloak calls", len(tps))
	}
	clients := 0
	for _, s := range sr.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		clients++
		if s.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("client span %q is not under the request's span", s.Name())
		}
		for _, a := range s.Attributes() {
			if v := a.Value.String(); strings.Contains(v, secret) || strings.Contains(v, "u-alice") {
				t.Errorf("client span attribute %s=%s", a.Key, v)
			}
		}
	}
	if clients != len(tps) {
		t.Fatalf("%d client spans for %d calls", clients, len(tps))
	}
	for i, tp := range tps {
		if !strings.HasPrefix(tp, "00-"+kongTrace+"-") {
			t.Errorf("call %d carried traceparent %q", i, tp)
		}
	}
}

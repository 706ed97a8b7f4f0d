package ginedge_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
)

func TestTrustedProxiesMustNotTrustEveryone(t *testing.T) {
	for _, p := range []string{"0.0.0.0/0", "::/0", "nonsense"} {
		if _, err := ginedge.NewEngine(zerolog.Nop(), []string{p}, nil); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	if _, err := ginedge.NewEngine(zerolog.Nop(), []string{"10.0.0.0/8", "192.0.2.1"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEngineLogsRouteTemplatesAndRecoversPanics(t *testing.T) {
	var logs bytes.Buffer
	e, err := ginedge.NewEngine(zerolog.New(&logs), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.GET("/v1/media/:id/content", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	e.GET("/boom", func(c *gin.Context) { panic(errors.New("secret detail")) })
	e.GET("/readyz", ginedge.Ready(func(context.Context) error { return errors.New("dial tcp: refused") }, "database"))
	serve := func(path string, h http.Header) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		for k, v := range h {
			r.Header[k] = v
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, r)
		return rec
	}
	rec := serve("/v1/media/jan_abc/content?sig=s3cr3t", http.Header{"X-Request-Id": {"req-1"}})
	if rec.Code != 204 || rec.Header().Get("X-Request-ID") != "req-1" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if rec := serve("/boom", nil); rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal_error") {
		t.Fatalf("panic: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("/readyz", nil); rec.Code != 503 || !strings.Contains(rec.Body.String(), "database unavailable") || strings.Contains(rec.Body.String(), "refused") {
		t.Fatalf("ready: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("/nope", nil); rec.Code != 404 || !strings.Contains(rec.Body.String(), "not_found") {
		t.Fatalf("no route: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("/readyz", nil); rec.Code == 405 {
		t.Fatal("readyz")
	}
	out := logs.String()
	for _, leak := range []string{"s3cr3t", "jan_abc", "secret detail"} {
		if strings.Contains(out, leak) {
			t.Fatalf("log carries %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, `"route":"/v1/media/:id/content"`) || !strings.Contains(out, `"request_id":"req-1"`) {
		t.Fatalf("log: %s", out)
	}
}

// A request id shaped like an API key or a JWT is replaced by a generated
// one: the handlers (and their audit events), the log and the response see
// only the new id.
func TestEngineReplacesACredentialShapedRequestID(t *testing.T) {
	for _, bad := range []string{"sk_rt1234", "eyJrt.ab12.x"} {
		var logs bytes.Buffer
		e, err := ginedge.NewEngine(zerolog.New(&logs), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var seen string
		e.GET("/x", func(c *gin.Context) { seen = c.Writer.Header().Get("X-Request-ID"); c.Status(http.StatusNoContent) })
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("X-Request-ID", bad)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, r)
		got := rec.Header().Get("X-Request-ID")
		if got == bad || len(got) != 32 || seen != got {
			t.Fatalf("%s: response id %q, handler saw %q", bad, got, seen)
		}
		if strings.Contains(logs.String(), bad) || !strings.Contains(logs.String(), `"request_id":"`+got+`"`) {
			t.Fatalf("%s: log %s", bad, logs.String())
		}
	}
}

func TestEngineTracesEachRequestByRouteTemplateUnderKongsTrace(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	otel.SetTracerProvider(tp)
	defer func() { _ = tp.Shutdown(context.Background()) }()
	const secret = "sk_live_TOPSECRETvalue0123456789"
	const kongTrace, kongSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	var logs bytes.Buffer
	e, err := ginedge.NewEngine(zerolog.New(&logs), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.GET("/v1/media/:id/content", func(c *gin.Context) { c.Status(http.StatusOK) })
	e.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/healthz", nil)) // probes: no span
	r := httptest.NewRequest("GET", "/v1/media/jan_abc/content?sig="+secret, nil)
	r.Header.Set("Traceparent", "00-"+kongTrace+"-"+kongSpan+"-01")
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Header.Set("X-API-Key", secret)
	e.ServeHTTP(httptest.NewRecorder(), r)
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nope/"+secret, nil))
	spans := sr.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Name() != "GET /v1/media/:id/content" || s.Parent().TraceID().String() != kongTrace || s.Parent().SpanID().String() != kongSpan {
		t.Fatalf("span %q parent %v", s.Name(), s.Parent())
	}
	if spans[1].Name() != "GET unmatched" || spans[1].Parent().IsValid() {
		t.Fatalf("unmatched span %q parent %v", spans[1].Name(), spans[1].Parent())
	}
	for _, sp := range spans {
		for _, a := range sp.Attributes() {
			if v := a.Value.String(); strings.Contains(v, secret) || strings.Contains(v, "jan_abc") {
				t.Fatalf("attribute %s=%s", a.Key, v)
			}
		}
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+kongTrace+`"`) {
		t.Fatalf("the access log lacks the trace id: %s", logs.String())
	}
}

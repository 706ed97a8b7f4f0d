package tracing

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys (OpenTelemetry HTTP semantic conventions).
const (
	AttrMethod     = "http.request.method"
	AttrRoute      = "http.route"
	AttrStatus     = "http.response.status_code"
	AttrServerAddr = "server.address"
	AttrServerPort = "server.port"
)

// StartServer extracts the incoming trace context (traceparent,
// tracestate) from r and starts the request's server span, named
// "METHOD route". route must be the route template ("/v1/media/:id") or
// "unmatched", never the raw path. The caller ends it with EndServer.
func StartServer(r *http.Request, route string) (context.Context, trace.Span) {
	ctx := Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	m := Method(r.Method)
	return Tracer().Start(ctx, m+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String(AttrMethod, m), attribute.String(AttrRoute, route)))
}

// EndServer records the response status (5xx marks the span failed) and
// ends the span.
func EndServer(span trace.Span, status int) {
	span.SetAttributes(attribute.Int(AttrStatus, status))
	if status >= 500 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// Transport wraps base (http.DefaultTransport when nil) so that every
// request with a trace context gets a client span named "HTTP METHOD"
// (method, upstream host and port, status — never the path, query or
// headers) and carries the context on in traceparent/tracestate. Requests
// without a trace context pass through untouched. The caller's request is
// never modified (the span's request is a clone); the span ends when the
// response body is closed or read to its end, so a stream is timed whole.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base}
}

type transport struct{ base http.RoundTripper }

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return t.base.RoundTrip(r)
	}
	m := Method(r.Method)
	attrs := []attribute.KeyValue{attribute.String(AttrMethod, m)}
	if host, port, err := net.SplitHostPort(r.URL.Host); err == nil {
		attrs = append(attrs, attribute.String(AttrServerAddr, host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, attribute.Int(AttrServerPort, p))
		}
	} else if r.URL.Host != "" {
		attrs = append(attrs, attribute.String(AttrServerAddr, r.URL.Host))
	}
	ctx, span := Tracer().Start(r.Context(), "HTTP "+m, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...))
	out := r.Clone(ctx)
	Propagator.Inject(ctx, propagation.HeaderCarrier(out.Header))
	res, err := t.base.RoundTrip(out)
	if err != nil {
		// the error text names the URL (query included): not recorded
		span.SetStatus(codes.Error, "request failed")
		span.End()
		return nil, err
	}
	span.SetAttributes(attribute.Int(AttrStatus, res.StatusCode))
	if res.StatusCode >= 500 {
		span.SetStatus(codes.Error, "")
	}
	if res.Body == nil || res.Body == http.NoBody || res.StatusCode == http.StatusSwitchingProtocols {
		// (an upgraded connection's body must stay an io.ReadWriteCloser)
		span.End()
		return res, nil
	}
	res.Body = &spanBody{ReadCloser: res.Body, span: span}
	return res, nil
}

// spanBody ends its span at EOF, on a read error, or on Close.
type spanBody struct {
	io.ReadCloser
	span trace.Span
	once sync.Once
}

func (b *spanBody) end() { b.once.Do(func() { b.span.End() }) }

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *spanBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

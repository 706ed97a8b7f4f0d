// Package tracing is the OpenTelemetry side of the services: one
// configuration (the standard OTEL_* variables, read by pkg/envconf), one
// set-up (an OTLP/HTTP exporter behind a batch processor, installed as the
// global tracer provider), the W3C trace-context propagator, and the two
// span shapes the services produce: a server span per request named by the
// route template, and a client span per outgoing HTTP request with the
// trace context injected.
//
// It is off by default: without OTEL_EXPORTER_OTLP_ENDPOINT, Start installs
// nothing (no exporter, no goroutine) and the spans are the global no-op
// tracer's, which still carry an incoming traceparent's context, so the
// services pass Kong's trace on to their upstreams either way.
//
// What it never records: raw paths, query strings, header values, bodies,
// client addresses, error texts (a transport error names its URL). Spans
// carry the method, the route template, the status, and for client spans
// the upstream host and port.
//
// It is not a metrics or logging package (pkg/httpmetrics, zerolog).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

// Config is the tracing configuration of a service, read by pkg/envconf
// (envconf.Tracing: the OTEL_* variables, validated there). It lives in
// envconf so that reading configuration never links the OpenTelemetry SDK
// (the Kong plugin servers read envconf too).
type Config = envconf.Tracing

func sampler(c Config) sdktrace.Sampler {
	switch c.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(c.SamplerArg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SamplerArg))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// ShutdownTimeout bounds the final flush of Start's provider.
const ShutdownTimeout = 5 * time.Second

// Start installs tracing for the service named service (the default of
// OTEL_SERVICE_NAME) and returns the function that flushes and stops it
// (bounded by ShutdownTimeout). When c is not Enabled it installs nothing,
// starts nothing, and the stop function does nothing. The exporter does no
// I/O until the first batch.
func Start(c Config, service string) (stop func(), err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	otel.SetTextMapPropagator(Propagator)
	if !c.Enabled() {
		return func() {}, nil
	}
	tp, err := NewProvider(c, service)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(tp)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}

// NewProvider returns the SDK provider Start installs: the configured
// sampler, the service's resource, and a batch processor exporting to
// Endpoint + "/v1/traces" over OTLP/HTTP (protobuf).
func NewProvider(c Config, service string) (*sdktrace.TracerProvider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, errors.New("OTEL_EXPORTER_OTLP_ENDPOINT: unset")
	}
	name := c.ServiceName
	if name == "" {
		name = service
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(strings.TrimRight(c.Endpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", name))
	return sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler(c)),
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp),
	), nil
}

// Propagator is the W3C trace-context propagator (traceparent and
// tracestate) the services extract and inject — the format Kong's
// opentelemetry plugin sends with header_type w3c. Baggage is not
// propagated: it is free-form client data.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// instrumentation is the tracer's instrumentation scope name.
const instrumentation = "github.com/edgeguard/edgeguard/pkg/tracing"

// Tracer is the tracer of the global provider (the no-op one until Start
// installs an exporter).
func Tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(instrumentation) }

// Method is m when it is a standard method, else "_OTHER" (semantic
// conventions): a client cannot blow up the span names. The same bound as
// the metrics' method label (httpmetrics.Method).
func Method(m string) string { return httpmetrics.Method(m) }

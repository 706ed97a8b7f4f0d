package envconf

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// TracingSamplers are the OTEL_TRACES_SAMPLER values supported (the
// specification's names); the default is parentbased_always_on, so Kong's
// sampling decision (the traceparent's sampled flag) is followed.
var TracingSamplers = []string{"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// Tracing is a service's tracing configuration (pkg/tracing uses it; it
// is declared here so that reading configuration links no OpenTelemetry).
type Tracing struct {
	// Endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) is the collector's OTLP/HTTP
	// base URL, e.g. http://otel-collector:4318; spans go to
	// Endpoint + "/v1/traces". Empty: tracing off.
	Endpoint string
	// ServiceName (OTEL_SERVICE_NAME) names the service in traces; empty:
	// the service's own name.
	ServiceName string
	// Sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on) and
	// SamplerArg (OTEL_TRACES_SAMPLER_ARG, the ratio of the *traceidratio
	// samplers, 0..1, default 1).
	Sampler    string
	SamplerArg float64
}

// Enabled reports whether spans are exported.
func (c Tracing) Enabled() bool { return c.Endpoint != "" }

// Validate checks c: an absolute http(s) endpoint without credentials, a
// query or a fragment (a collector token belongs in a header, never a URL
// that is logged), a known sampler, a ratio in 0..1. Every fault is
// reported (errors.Join).
func (c Tracing) Validate() error {
	var f Faults
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			f.Add(errors.New("OTEL_EXPORTER_OTLP_ENDPOINT: not an absolute http(s) URL"))
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			f.Add(errors.New("OTEL_EXPORTER_OTLP_ENDPOINT: must not carry credentials, a query or a fragment"))
		}
	}
	if c.Sampler != "" && !slices.Contains(TracingSamplers, c.Sampler) {
		f.Add(fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not one of %s", c.Sampler, strings.Join(TracingSamplers, ", ")))
	}
	if c.SamplerArg < 0 || c.SamplerArg > 1 {
		f.Add(errors.New("OTEL_TRACES_SAMPLER_ARG: must be a ratio between 0 and 1"))
	}
	return f.Err()
}

// parseRatio reads OTEL_TRACES_SAMPLER_ARG ("" is 1).
func parseRatio(s string) (float64, error) {
	if s == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 {
		return 0, errors.New("OTEL_TRACES_SAMPLER_ARG: must be a ratio between 0 and 1")
	}
	return f, nil
}

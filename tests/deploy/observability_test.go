package deploy

import (
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestKongObservabilityPlugins: the gateway exports its own metrics and
// starts the trace the services continue (docs/observability.md): Kong's
// prometheus plugin globally, never labelled per consumer (an identity is
// not a label); the opentelemetry plugin globally, exporting to a collector
// and handing the trace upstream as a W3C traceparent; kong.conf turns
// Kong's request spans on with a sampling rate in 0..1. The trace starts at
// Kong: a client's traceparent is not extracted (it would pick the trace id
// and force sampling).
func TestKongObservabilityPlugins(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(repoFile(t, "kong/kong.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	global := map[string]map[string]any{}
	for _, p := range l(doc["plugins"]) {
		pm := m(p)
		if pm["route"] != nil || pm["service"] != nil {
			continue
		}
		global[s(pm["name"])] = m(pm["config"])
	}
	prom, ok := global["prometheus"]
	if !ok {
		t.Fatal("kong.yml has no global prometheus plugin")
	}
	if prom["per_consumer"] != false || prom["status_code_metrics"] != true || prom["latency_metrics"] != true {
		t.Errorf("prometheus config %v: want per_consumer false, status_code_metrics and latency_metrics true", prom)
	}
	otel, ok := global["opentelemetry"]
	if !ok {
		t.Fatal("kong.yml has no global opentelemetry plugin")
	}
	prop := m(otel["propagation"])
	if s(otel["traces_endpoint"]) == "" || s(prop["default_format"]) != "w3c" || !slices.Equal(strList(prop["inject"]), []string{"w3c"}) {
		t.Errorf("opentelemetry config %v: want a traces_endpoint and propagation inject [w3c], default_format w3c", otel)
	}
	if _, deprecated := otel["header_type"]; deprecated {
		t.Error("opentelemetry header_type is deprecated in Kong 3.9: use propagation")
	}
	// The trace starts at the edge: a public client does not choose it.
	if ex, ok := prop["extract"]; !ok || len(l(ex)) != 0 {
		t.Errorf("opentelemetry propagation.extract = %v, want [] (clients' trace context not extracted)", ex)
	}
	if _, inline := otel["headers"]; inline {
		t.Error("opentelemetry headers in kong.yml: a collector token would be visible in the Admin API")
	}
	c := kongConf(t)
	if c["tracing_instrumentations"] == "" || c["tracing_instrumentations"] == "off" {
		t.Errorf("kong.conf tracing_instrumentations = %q: the opentelemetry plugin would start no span", c["tracing_instrumentations"])
	}
	if r, err := strconv.ParseFloat(c["tracing_sampling_rate"], 64); err != nil || r <= 0 || r > 1 {
		t.Errorf("kong.conf tracing_sampling_rate = %q, want a rate in (0, 1]", c["tracing_sampling_rate"])
	}
}

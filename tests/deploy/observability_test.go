package deploy

import (
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestKongObservabilityPlugins: the gateway exports its own metrics and
// starts the trace the services continue (docs/observability.md): Kong's
// prometheus plugin globally, never labelled per consumer (an identity is
// not a label); the opentelemetry plugin globally, exporting to a collector
// and handing the trace upstream as a W3C traceparent; kong.conf turns
// Kong's request spans on with a sampling rate in 0..1.
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
	if otel["header_type"] != "w3c" || s(otel["traces_endpoint"]) == "" {
		t.Errorf("opentelemetry config %v: want header_type w3c and a traces_endpoint", otel)
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

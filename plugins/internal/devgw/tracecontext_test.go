package devgw

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestTraceContextPassesThroughUnchanged: like Kong (which adds its own
// span only with the opentelemetry plugin), the dev gateway hands the
// client's W3C traceparent and tracestate to the upstream byte for byte,
// through header-guard and the proxy alike.
func TestTraceContextPassesThroughUnchanged(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	yml := fmt.Sprintf(`_format_version: "3.0"
services:
- name: svc
  url: %s
  routes:
  - name: guarded
    paths: [/guarded]
    strip_path: false
    plugins: [{name: header-guard}]
  - name: bare
    paths: [/bare]
    strip_path: false
`, up.URL)
	g, _ := newGateway(t, yml, Options{})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const ts = "kong=00f067aa0ba902b7,vendor=opaque"
	for _, path := range []string{"/guarded/x", "/bare/x"} {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("Traceparent", tp)
		r.Header.Set("Tracestate", ts)
		if rec := serve(g, r); rec.Code != 200 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		got := up.last(t)
		if v := got.Header.Values("Traceparent"); len(v) != 1 || v[0] != tp {
			t.Errorf("%s: upstream traceparent %q, want %q", path, v, tp)
		}
		if v := got.Header.Values("Tracestate"); len(v) != 1 || v[0] != ts {
			t.Errorf("%s: upstream tracestate %q, want %q", path, v, ts)
		}
	}
}

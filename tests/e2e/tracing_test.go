package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestKongStartsTheTraceTheServicesContinue: kong.yml's opentelemetry
// plugin injects a W3C traceparent upstream and does not extract the
// client's (propagation.extract: []), so a public client cannot choose the
// trace id; llm-api continues Kong's trace to the model server.
func TestKongStartsTheTraceTheServicesContinue(t *testing.T) {
	_, e := requireEdge(t)
	access, _ := e.guest(t)
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	marker := "trace-" + randHex(6)
	h := http.Header{
		"Traceparent":  {"00-" + clientTrace + "-00f067aa0ba902b7-01"},
		"Tracestate":   {"attacker=1"},
		"X-Request-ID": {marker},
	}
	if a := e.do(t, http.MethodPost, "/v1/chat/completions", access, map[string]any{"model": "stub-model",
		"messages": []map[string]string{{"role": "user", "content": "hi"}}}, h); a.status != http.StatusOK {
		t.Fatalf("chat completion: %d %s", a.status, a.body)
	}
	resp, err := http.Get(e.Env["STUB_UPSTREAM_URL"] + "/_stub/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var recs []struct {
		Header http.Header `json:"header"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		t.Fatal(err)
	}
	w3c := regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)
	for _, r := range recs {
		if r.Header.Get("X-Request-ID") != marker {
			continue
		}
		m := w3c.FindStringSubmatch(r.Header.Get("Traceparent"))
		switch {
		case m == nil:
			t.Errorf("the model server got traceparent %q, want Kong's W3C trace continued by llm-api", r.Header.Get("Traceparent"))
		case m[1] == clientTrace:
			t.Errorf("the client's trace id %s reached the model server: Kong extracted it", clientTrace)
		}
		if strings.Contains(r.Header.Get("Tracestate"), "attacker") {
			t.Errorf("the client's tracestate reached the model server: %q", r.Header.Get("Tracestate"))
		}
		return
	}
	t.Fatalf("the stub recorded no request with X-Request-ID %s", marker)
}

package server_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/server"
)

func TestInternalListenerServesMetrics(t *testing.T) {
	m := httpmetrics.New("mcp-tools")
	h, err := server.Internal(server.Config{Metrics: m, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/readyz", nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.Contains(string(b), `edgeguard_http_requests_total{method="GET",route="/readyz",service="mcp-tools",status="200"} 1`) {
		t.Fatalf("%d %s", rec.Code, b)
	}
}

package httpmetrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics/ginmetrics"
)

func TestRouteTemplatesNotRawPaths(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	m := httpmetrics.New("llm-api")
	e := gin.New()
	e.Use(ginmetrics.Middleware(m))
	e.GET("/auth/api-keys/:id", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	for _, p := range []string{"/auth/api-keys/a", "/auth/api-keys/b", "/nope/../../etc/passwd"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	out := string(b)
	for _, want := range []string{
		`edgeguard_http_requests_total{method="GET",route="/auth/api-keys/:id",service="llm-api",status="204"} 2`,
		`edgeguard_http_requests_total{method="GET",route="unmatched",service="llm-api",status="404"} 1`,
		`edgeguard_http_request_duration_seconds_count{method="GET",route="/auth/api-keys/:id",service="llm-api"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "etc/passwd") || strings.Contains(out, `route="/auth/api-keys/a"`) {
		t.Fatal("a raw path became a label")
	}
}

// Random method names from clients all land in one series: the label set
// stays bounded.
func TestUnknownMethodsShareOneLabel(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	m := httpmetrics.New("llm-api")
	e := gin.New()
	e.Use(ginmetrics.Middleware(m))
	e.GET("/x", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	for _, method := range []string{"BREW1", "BREW2", "get", "GET"} {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/x", nil))
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	out := string(b)
	if strings.Contains(out, "BREW") || strings.Contains(out, `method="get"`) ||
		!strings.Contains(out, `method="_OTHER"`) || !strings.Contains(out, `method="GET",route="/x",service="llm-api",status="204"} 1`) {
		t.Fatalf("%s", out)
	}
}

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

package devgw

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

// The proxy's cost on loopback: the same small GET straight to an upstream,
// through the dev gateway with no plugin, and with header-guard. Compare
// ns/op (BENCHMARKS.md reports the ratio).

func benchUpstream(b *testing.B) *httptest.Server {
	b.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	b.Cleanup(up.Close)
	return up
}

func benchLoop(b *testing.B, url string) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func benchGateway(b *testing.B, upstreamURL, plugins string) string {
	b.Helper()
	g, _ := newGateway(b, fmt.Sprintf(`_format_version: "3.0"
services:
- name: svc
  url: %s
  routes:
  - name: r
    paths: [/v1/models]
    strip_path: false
    plugins: %s
`, upstreamURL, plugins), Options{})
	srv := httptest.NewServer(g)
	b.Cleanup(srv.Close)
	return srv.URL
}

func BenchmarkDirectToUpstream(b *testing.B) {
	benchLoop(b, benchUpstream(b).URL+"/v1/models")
}

func BenchmarkDevGatewayNoPlugins(b *testing.B) {
	benchLoop(b, benchGateway(b, benchUpstream(b).URL, "[]")+"/v1/models")
}

func BenchmarkDevGatewayHeaderGuard(b *testing.B) {
	benchLoop(b, benchGateway(b, benchUpstream(b).URL, "[{name: header-guard}]")+"/v1/models")
}

// BenchmarkLookup is the route lookup on the repository's kong.yml.
func BenchmarkLookup(b *testing.B) {
	c, err := kongconf.Load(kongYML)
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(Options{Config: c})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, _ := normalizePath("/realms/jan/protocol/openid-connect/token")
		if r, _ := g.table.lookup("POST", "localhost:8000", p); r == nil {
			b.Fatal("no route")
		}
	}
}

package mtls_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

// BenchmarkRoundTrip is the cost of the Kong → service hop's transport: one
// GET with a small JSON answer over loopback, on a kept-alive connection,
// plain HTTP against TLS with the edge's client certificate (the
// handshake paid once); "mtls-new-conn" pays a full handshake per request
// (client certificate verified, no resumption: what a connection Kong
// opens costs). Same server, same handler, same run: compare the ratios
// (BENCHMARKS.md "mTLS on the Kong → service hop").
func BenchmarkRoundTrip(b *testing.B) {
	s := newSetup(b)
	srv, err := mtls.New(s.cfg)
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("x", 256)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":"`+body+`"}`)
	})
	serve := func(tc *tls.Config) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		if tc != nil {
			ln = tls.NewListener(ln, tc)
		}
		go func() { _ = hs.Serve(ln) }()
		b.Cleanup(func() { _ = hs.Close() })
		return ln.Addr().String()
	}
	plainAddr, tlsAddr := serve(nil), serve(srv.TLSConfig())
	edge := s.clientCA.Client(b, devpki.Options{})
	for _, c := range []struct {
		name      string
		url       string
		tc        *tls.Config
		keepAlive bool
	}{
		{"plain", "http://" + plainAddr + "/", nil, true},
		{"mtls", "https://" + tlsAddr + "/", mtlstest.ClientTLS(b, s.serverCA, "llm-api", edge), true},
		{"plain-new-conn", "http://" + plainAddr + "/", nil, false},
		{"mtls-new-conn", "https://" + tlsAddr + "/", mtlstest.ClientTLS(b, s.serverCA, "llm-api", edge), false},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := &http.Transport{TLSClientConfig: c.tc, DisableKeepAlives: !c.keepAlive, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := cl.Get(c.url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}

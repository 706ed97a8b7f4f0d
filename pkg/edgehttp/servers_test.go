package edgehttp_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

func TestServersListenServeAndShutDown(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	s := edgehttp.Servers{Public: &http.Server{Addr: "127.0.0.1:0", Handler: ok}, Internal: &http.Server{Addr: "127.0.0.1:0", Handler: ok}}
	pub, in, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pub, in) }()
	for _, ln := range []net.Listener{pub, in} {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestListenNamesTheVariable(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := edgehttp.Servers{Public: &http.Server{Addr: "127.0.0.1:0"}, Internal: &http.Server{Addr: busy.Addr().String()}}
	if _, _, err := s.Listen(); err == nil || !strings.HasPrefix(err.Error(), "INTERNAL_LISTEN_ADDR:") {
		t.Fatalf("%v", err)
	}
	s = edgehttp.Servers{Public: &http.Server{Addr: busy.Addr().String()}, Internal: &http.Server{Addr: "127.0.0.1:0"}}
	if _, _, err := s.Listen(); err == nil || !strings.HasPrefix(err.Error(), "LISTEN_ADDR:") {
		t.Fatalf("%v", err)
	}
}

// TestServersPublicTLSRequiresTheEdgesCertificate: with PublicTLS the
// public listener serves TLS and refuses a client without the edge's
// certificate; the internal one stays plain HTTP (probes, Prometheus).
func TestServersPublicTLSRequiresTheEdgesCertificate(t *testing.T) {
	pki := mtlstest.New(t, "services CA")
	env := mtlstest.ServiceEnv(t, pki, pki, "llm-api")
	ids, _ := mtls.ParseIdentity(mtlstest.EdgeURI)
	ms, err := mtls.New(mtls.Config{CertFile: env["TLS_CERT_FILE"], KeyFile: env["TLS_KEY_FILE"], ClientCAFile: env["TLS_CLIENT_CA_FILE"],
		ClientIdentities: []mtls.Identity{ids}})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	s := edgehttp.Servers{Public: &http.Server{Addr: "127.0.0.1:0", Handler: ok}, Internal: &http.Server{Addr: "127.0.0.1:0", Handler: ok},
		PublicTLS: ms.TLSConfig()}
	pub, in, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx, pub, in) }()
	edge := &http.Client{Transport: &http.Transport{TLSClientConfig: mtlstest.ClientTLS(t, pki, "llm-api", pki.Client(t, devpki.Options{}))}}
	stranger := &http.Client{Transport: &http.Transport{TLSClientConfig: mtlstest.ClientTLS(t, pki, "llm-api", nil)}}
	if resp, err := edge.Get("https://" + pub.Addr().String()); err != nil || resp.StatusCode != 204 {
		t.Fatalf("the edge: %v %v", resp, err)
	}
	if _, err := stranger.Get("https://" + pub.Addr().String()); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("without a client certificate: %v", err)
	}
	// net/http answers a plain request on a TLS listener 400 itself
	if resp, err := http.Get("http://" + pub.Addr().String()); err == nil && resp.StatusCode != 400 {
		t.Fatalf("plain HTTP on the TLS listener: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + in.Addr().String()); err != nil || resp.StatusCode != 204 {
		t.Fatalf("internal listener: %v %v", resp, err)
	}
}

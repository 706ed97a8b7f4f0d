package mtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

// FuzzCheckPeer: whatever certificate a client sends (DER bytes that parse),
// the identity check accepts it only when one of its URI SANs is the edge's
// identity, and never panics.
func FuzzCheckPeer(f *testing.F) {
	ca, err := devpki.NewCA("fuzz CA", devpki.Options{})
	if err != nil {
		f.Fatal(err)
	}
	mtlstest.Record(ca.KeyPEM)
	for _, o := range []devpki.Options{
		{CommonName: "edge", URIs: []string{mtlstest.EdgeURI}},
		{CommonName: "x", URIs: []string{"spiffe://edgeguard/edge/x", "SPIFFE://EDGEGUARD/edge"}},
		{CommonName: mtlstest.EdgeURI, DNSNames: []string{"edgeguard-edge", "*.edge"}},
	} {
		l, err := ca.Client(o)
		if err != nil {
			f.Fatal(err)
		}
		mtlstest.Record(l.KeyPEM)
		f.Add(l.Cert.Raw)
	}
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	edge, _ := mtls.ParseIdentity(mtlstest.EdgeURI)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		got := mtls.CheckPeer(cert, []mtls.Identity{edge})
		want := false
		for _, u := range cert.URIs {
			if id, err := mtls.ParseIdentity(u.String()); err == nil && id.String() == edge.String() {
				want = true
			}
		}
		if (got == nil) != want {
			t.Fatalf("CheckPeer = %v for URIs %v", got, cert.URIs)
		}
		if got != nil && !errors.Is(got, mtls.ErrIdentity) {
			t.Fatalf("refusal %v does not wrap ErrIdentity", got)
		}
	})
}

// FuzzParseIdentity: a parsed identity is canonical (parsing its String
// gives it back).
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"spiffe://edgeguard/edge", "EdgeGuard-Edge.", "https://a/b%2Fc", "spiffe://a:1/x", "*.x", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := mtls.ParseIdentity(s)
		if err != nil {
			return
		}
		again, err := mtls.ParseIdentity(id.String())
		if err != nil || again != id {
			t.Fatalf("%q → %q → %v %v", s, id, again, err)
		}
	})
}

// FuzzHandshake feeds a client's first bytes to the service's TLS
// listener: no input completes a handshake (none can carry the edge's
// certificate and its proof of the key), none panics or hangs.
func FuzzHandshake(f *testing.F) {
	s := newSetup(f)
	srv, err := mtls.New(s.cfg)
	if err != nil {
		f.Fatal(err)
	}
	cfg := srv.TLSConfig()
	// Seeds: real first flights of a client with and without the edge's
	// certificate (the ClientHello), and junk.
	for _, leaf := range []*devpki.Leaf{s.clientCA.Client(f, devpki.Options{}), nil} {
		f.Add(firstFlight(f, mtlstest.ClientTLS(f, s.serverCA, "llm-api", leaf)))
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: llm-api\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		cli, sv := net.Pipe()
		defer cli.Close()
		go func() { _, _ = io.Copy(io.Discard, cli) }()
		go func() { _, _ = cli.Write(b); time.Sleep(time.Millisecond); _ = cli.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn := tls.Server(sv, cfg)
		if err := conn.HandshakeContext(ctx); err == nil {
			t.Fatal("a handshake completed from client bytes alone")
		}
		_ = conn.Close()
	})
}

// firstFlight is what a TLS client writes first (its ClientHello).
func firstFlight(t testing.TB, tc *tls.Config) []byte {
	t.Helper()
	cli, sv := net.Pipe()
	done := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 64<<10)
		n, _ := sv.Read(buf)
		done <- buf[:n]
		_ = sv.Close()
	}()
	_ = tls.Client(cli, tc).Handshake()
	_ = cli.Close()
	return <-done
}

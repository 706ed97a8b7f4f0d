package secretgen

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

func recordKeys(t *testing.T, dir string) {
	t.Helper()
	for _, f := range TLSFiles() {
		if strings.HasSuffix(f, ".key") {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err == nil {
				mtlstest.Record(b)
			}
		}
	}
}

func leaf(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	cb, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(name, ".crt")+".key"))
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := mtls.KeyPair(cb, kb)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// TestGeneratedCertificatesMakeTheMTLSHop: the edge's client certificate
// and each service's server certificate, ECDSA P-256 with short lifetimes,
// complete a real handshake through pkg/mtls (the service's listener) with
// the service's name as the server name Kong verifies.
func TestGeneratedCertificatesMakeTheMTLSHop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if err := Generate(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	recordKeys(t, dir)
	edge := leaf(t, dir, EdgeClientCert)
	if len(edge.URIs) != 1 || edge.URIs[0].String() != EdgeClientURI || !slices.Equal(edge.DNSNames, []string{EdgeClientDNS}) ||
		!slices.Equal(edge.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("edge certificate: %v %v %v", edge.URIs, edge.DNSNames, edge.ExtKeyUsage)
	}
	for _, svc := range sortedServices() {
		c := leaf(t, dir, ServiceCert(svc))
		if c.PublicKeyAlgorithm != x509.ECDSA || c.NotAfter.Sub(c.NotBefore) > LeafLifetime+time.Hour || !slices.Equal(c.DNSNames, TLSServices[svc]) ||
			len(c.IPAddresses) != 0 {
			t.Errorf("%s: %v %v %v %v", svc, c.PublicKeyAlgorithm, c.NotAfter.Sub(c.NotBefore), c.DNSNames, c.IPAddresses)
		}
		id, _ := mtls.ParseIdentity(EdgeClientURI)
		srv, err := mtls.New(mtls.Config{CertFile: filepath.Join(dir, ServiceCert(svc)), KeyFile: filepath.Join(dir, ServiceKey(svc)),
			ClientCAFile: filepath.Join(dir, MTLSCA), ClientIdentities: []mtls.Identity{id}, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
		go func() { _ = hs.Serve(tls.NewListener(ln, srv.TLSConfig())) }()
		kp, err := tls.LoadX509KeyPair(filepath.Join(dir, EdgeClientCert), filepath.Join(dir, EdgeClientKey))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		caPEM, _ := os.ReadFile(filepath.Join(dir, MTLSCA))
		pool.AppendCertsFromPEM(caPEM)
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: svc, Certificates: []tls.Certificate{kp}}}}
		resp, err := cl.Get("https://" + ln.Addr().String())
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", svc, resp, err)
		} else {
			resp.Body.Close()
		}
		_ = hs.Close()
	}
}

// TestCertificatesAreRenewedBeforeTheyExpire: a second run keeps a valid
// set; once a leaf is within RenewBefore of its end it is re-issued by the
// same CA; once the CA is, everything is.
func TestCertificatesAreRenewedBeforeTheyExpire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	t0 := time.Now()
	var renewed []string
	if err := Generate(dir, Options{Now: func() time.Time { return t0 }, Renewed: &renewed}); err != nil {
		t.Fatal(err)
	}
	recordKeys(t, dir)
	if len(renewed) != 5 {
		t.Fatalf("first run wrote %v", renewed)
	}
	serial := func(name string) string { return leaf(t, dir, name).SerialNumber.String() }
	before := serial(EdgeClientCert)
	caBefore, _ := os.ReadFile(filepath.Join(dir, MTLSCA))
	if err := Generate(dir, Options{Now: func() time.Time { return t0.Add(24 * time.Hour) }, Renewed: &renewed}); err != nil {
		t.Fatal(err)
	}
	if len(renewed) != 0 || serial(EdgeClientCert) != before {
		t.Fatalf("a valid set was renewed: %v", renewed)
	}
	// six days on: every leaf has less than two days left
	if err := Generate(dir, Options{Now: func() time.Time { return t0.Add(6 * 24 * time.Hour) }, Renewed: &renewed}); err != nil {
		t.Fatal(err)
	}
	recordKeys(t, dir)
	caAfter, _ := os.ReadFile(filepath.Join(dir, MTLSCA))
	if len(renewed) != 4 || serial(EdgeClientCert) == before || string(caAfter) != string(caBefore) {
		t.Fatalf("leaves not renewed by the same CA: %v", renewed)
	}
	// 29 days on: the CA itself
	if err := Generate(dir, Options{Now: func() time.Time { return t0.Add(29 * 24 * time.Hour) }, Renewed: &renewed}); err != nil {
		t.Fatal(err)
	}
	recordKeys(t, dir)
	if len(renewed) != 5 || renewed[0] != MTLSCA {
		t.Fatalf("CA renewal wrote %v", renewed)
	}
}

// TestRenderKongYMLReplacesThePlaceholderCA: the repository's kong.yml
// holds exactly one PEM certificate (the placeholder services CA); the
// rendered file carries the generated CA in its place, and nothing else
// changes.
func TestRenderKongYMLReplacesThePlaceholderCA(t *testing.T) {
	src, err := os.ReadFile("../../../kong/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "s")
	if err := Generate(dir, Options{KongYML: src}); err != nil {
		t.Fatal(err)
	}
	recordKeys(t, dir)
	out, err := os.ReadFile(filepath.Join(dir, KongYML))
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, MTLSCA))
	body := strings.Split(strings.TrimSpace(string(ca)), "\n")[1]
	if !strings.Contains(string(out), body) {
		t.Fatal("the generated CA is not in the rendered kong.yml")
	}
	// everything outside the PEM block is unchanged
	outside := func(b []byte) (string, string) {
		i := strings.Index(string(b), "-----BEGIN CERTIFICATE-----")
		j := strings.Index(string(b), "-----END CERTIFICATE-----")
		if i < 0 || j < i {
			t.Fatal("no PEM block")
		}
		return string(b[:i]), string(b[j:])
	}
	sp, ss := outside(src)
	op, os_ := outside(out)
	if sp != op || ss != os_ {
		t.Error("the rendering changed kong.yml outside the certificate")
	}
	if string(out) == string(src) {
		t.Fatal("nothing changed")
	}
	// the block keeps its indentation
	for _, line := range strings.Split(string(out)[len(op):len(out)-len(os_)], "\n")[1:] {
		if !strings.HasPrefix(line, "    ") {
			t.Errorf("certificate line %q is not indented as the block scalar", line)
		}
	}
	if _, err := RenderKongYML(out, []byte("not pem")); err == nil {
		t.Error("a file without a CA accepted")
	}
	leafPEM, _ := os.ReadFile(filepath.Join(dir, EdgeClientCert))
	if _, err := RenderKongYML(out, leafPEM); err == nil {
		t.Error("a leaf accepted as the CA")
	}
	if _, err := RenderKongYML(append(out, out...), ca); err == nil {
		t.Error("a kong.yml with two certificates accepted")
	}
}

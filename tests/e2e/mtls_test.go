package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

// serviceOf names the service of a dev-stack URL (its server name for TLS).
func serviceOf(e *edgeStack, rawURL string) string {
	for name, env := range map[string]string{"llm-api": "LLM_API_URL", "media-api": "MEDIA_API_URL", "mcp-tools": "MCP_TOOLS_URL"} {
		if base := e.Env[env]; base != "" && strings.HasPrefix(rawURL, base) {
			return name
		}
	}
	return ""
}

// edgeTLS is what Kong presents to a service: the edge's client
// certificate of the dev stack (bin/gen-secrets), the service's certificate
// verified against the dev CA for the service's name.
func (e *edgeStack) edgeTLS(t testing.TB, service string) *tls.Config {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(e.Env["EDGE_CLIENT_CERT_FILE"], e.Env["EDGE_CLIENT_KEY_FILE"])
	if err != nil {
		t.Fatalf("the dev stack's edge client certificate: %v", err)
	}
	return &tls.Config{RootCAs: e.devCAPool(t), ServerName: service, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }}
}

func (e *edgeStack) devCAPool(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(e.Env["MTLS_CA_FILE"])
	if err != nil {
		t.Fatalf("the dev stack's CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("the dev stack's CA does not parse")
	}
	return pool
}

// TestServicesAcceptOnlyTheEdgesCertificate: the make-dev stack's services
// serve their public listeners over mTLS. Directly, without a client
// certificate, with one of another CA (the edge's identity, the wrong
// issuer), with an expired one and with one of the dev CA carrying another
// identity, the TLS handshake is refused; plain HTTP is not served; the
// edge's certificate gets the service's own answer (401: no credential —
// the edge assertion is still required). Through Kong every route works
// (the other gateway suites), so Kong presents that certificate and
// verifies the services' certificates against their names.
func TestServicesAcceptOnlyTheEdgesCertificate(t *testing.T) {
	_, e := requireEdge(t)
	other := mtlstest.New(t, "another CA")
	caKey, err := os.ReadFile(filepath.Join(e.Env["DEV_SECRETS"], "mtls_ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := os.ReadFile(e.Env["MTLS_CA_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	devCA, err := devpki.LoadCA(caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(o devpki.Options) *devpki.Leaf {
		l, err := devCA.Client(o)
		if err != nil {
			t.Fatal(err)
		}
		mtlstest.Record(l.KeyPEM)
		return l
	}
	expired := issue(devpki.Options{CommonName: "edge", URIs: []string{mtlstest.EdgeURI}, NotBefore: time.Now().Add(-72 * time.Hour), Lifetime: 24 * time.Hour})
	wrongSAN := issue(devpki.Options{CommonName: "edge", URIs: []string{"spiffe://edgeguard/llm-api"}, DNSNames: []string{"llm-api"}})
	foreign := other.Client(t, devpki.Options{})
	for _, svc := range []struct{ name, env, method, path string }{
		{"llm-api", "LLM_API_URL", http.MethodGet, "/v1/models"},
		{"media-api", "MEDIA_API_URL", http.MethodPost, "/v1/media"},
		{"mcp-tools", "MCP_TOOLS_URL", http.MethodPost, "/v1/mcp"},
	} {
		base := e.Env[svc.env]
		if !strings.HasPrefix(base, "https://") {
			t.Fatalf("%s=%q: the service's public listener is not TLS", svc.env, base)
		}
		get := func(tc *tls.Config) (int, error) {
			cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
			req, err := http.NewRequest(svc.method, base+svc.path, strings.NewReader("{}"))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := cl.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.StatusCode, nil
		}
		withCert := func(l *devpki.Leaf) *tls.Config {
			tc := e.edgeTLS(t, svc.name)
			if l == nil {
				tc.GetClientCertificate = nil
				return tc
			}
			kp, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
			return tc
		}
		for _, c := range []struct {
			name  string
			tc    *tls.Config
			alert string
		}{
			{"no client certificate", withCert(nil), "certificate required"},
			{"another CA's certificate with the edge's identity", withCert(foreign), "unknown certificate authority"},
			{"an expired certificate of the dev CA", withCert(expired), "expired certificate"},
			{"the dev CA's certificate with another identity", withCert(wrongSAN), "bad certificate"},
		} {
			if st, err := get(c.tc); err == nil || !strings.Contains(err.Error(), "tls: "+c.alert) {
				t.Errorf("%s, %s: %d %v; want the handshake refused (%s)", svc.name, c.name, st, err, c.alert)
			}
		}
		if st, err := get(e.edgeTLS(t, svc.name)); err != nil || st != http.StatusUnauthorized {
			t.Errorf("%s with the edge's certificate and no credential: %d %v; want the service's 401", svc.name, st, err)
		}
		// the certificate is the service's name, not the address dialled
		if _, err := get(e.edgeTLS(t, "127.0.0.1")); err == nil {
			t.Errorf("%s: its certificate verified for 127.0.0.1", svc.name)
		}
		resp, err := http.Get("http://" + strings.TrimPrefix(base, "https://") + svc.path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s over plain HTTP: %d; want net/http's 400 for HTTP on a TLS port", svc.name, resp.StatusCode)
			}
		}
	}
}

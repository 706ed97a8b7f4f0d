package kongconf

// Tests of kong/kong.yml's mTLS to the services (docs/architecture.md
// "Workload identity: mTLS from Kong to the services", kong/README.md):
// llm-api, media-api and mcp-tools are reached over https through
// upstreams whose host_header is the name their certificates carry, with
// the edge's client certificate presented and the services' certificates
// verified against the services CA; the client key is a vault reference.

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// mtlsServices are the services behind the edge that require its client
// certificate (pkg/mtls); Keycloak is the one other upstream, plain HTTP.
var mtlsServices = []string{"llm-api", "media-api", "mcp-tools"}

const (
	edgeClientTag = "edgeguard-edge-client"
	servicesCATag = "edgeguard-services-ca"
)

func tagged[T any](list []T, tags func(T) []string, tag string) []T {
	var out []T
	for _, e := range list {
		if slices.Contains(tags(e), tag) {
			out = append(out, e)
		}
	}
	return out
}

func TestKongYMLReachesTheServicesOverMTLS(t *testing.T) {
	c, _ := kongRoutes(t)
	clients := tagged(c.Certificates, func(x Certificate) []string { return x.Tags }, edgeClientTag)
	cas := tagged(c.CACertificates, func(x CACertificate) []string { return x.Tags }, servicesCATag)
	if len(clients) != 1 || len(cas) != 1 {
		t.Fatalf("%d certificates tagged %s, %d CA certificates tagged %s; want one each", len(clients), edgeClientTag, len(cas), servicesCATag)
	}
	for _, s := range c.Services {
		if !slices.Contains(mtlsServices, s.Name) {
			if s.Scheme() != "http" || s.ClientCertificate != "" || s.Name != "keycloak" {
				t.Errorf("service %q: only Keycloak is reached without the edge's mTLS", s.Name)
			}
			continue
		}
		if s.URL != "" || s.Scheme() != "https" || s.Hostname() != s.Name {
			t.Errorf("service %q: protocol %q host %q (url %q); want https to the upstream %q", s.Name, s.Scheme(), s.Hostname(), s.URL, s.Name)
		}
		if string(s.ClientCertificate) != clients[0].ID {
			t.Errorf("service %q: client_certificate %q, want the edge's %s", s.Name, s.ClientCertificate, clients[0].ID)
		}
		if s.TLSVerify == nil || !*s.TLSVerify {
			t.Errorf("service %q: tls_verify must be true (else any certificate is accepted)", s.Name)
		}
		if !slices.Equal(s.CACertificates, []string{cas[0].ID}) {
			t.Errorf("service %q: ca_certificates %v, want [%s]", s.Name, s.CACertificates, cas[0].ID)
		}
		u := c.Upstream(s.Name)
		switch {
		case u == nil:
			t.Errorf("service %q: no upstream %q", s.Name, s.Name)
		case u.HostHeader != s.Name:
			// nginx verifies the upstream certificate against the Host Kong
			// sends: the host_header, else the target's host (an address in
			// local runs, which no certificate carries)
			t.Errorf("upstream %q: host_header %q, want %q (the name its certificate is verified against)", u.Name, u.HostHeader, s.Name)
		}
	}
	for _, svc := range mtlsServices {
		if c.Upstream(svc) == nil {
			t.Errorf("no upstream %q", svc)
		}
	}
}

// The edge's client certificate and key come from a vault (Kong's env
// vault: EDGEGUARD_EDGE_CLIENT_CERT/KEY); a PEM key inline would be shown
// by the Admin API and baked into the image.
func TestKongYMLClientKeyIsAVaultReference(t *testing.T) {
	c, _ := kongRoutes(t)
	for _, ct := range c.Certificates {
		for field, v := range map[string]string{"key": ct.Key, "cert": ct.Cert, "key_alt": ct.KeyAlt} {
			if v == "" && field == "key_alt" {
				continue
			}
			if !strings.HasPrefix(v, "{vault://") || !strings.HasSuffix(v, "}") || strings.Contains(v, "PRIVATE KEY") {
				t.Errorf("certificate %s: %s is not a vault reference", ct.ID, field)
			}
		}
		if ct.Key != "{vault://env/edgeguard-edge-client-key}" || ct.Cert != "{vault://env/edgeguard-edge-client-cert}" {
			t.Errorf("certificate %s: %q %q; the image's entrypoint and compose/k8s provide EDGEGUARD_EDGE_CLIENT_{CERT,KEY}", ct.ID, ct.Cert, ct.Key)
		}
	}
}

// The shipped services CA is the placeholder (its key destroyed: it
// verifies no certificate), a CA Kong accepts (not expired, CA basic
// constraint), and the file's only PEM certificate, which every renderer
// replaces (bin/gen-secrets -kong-yml, scripts/kong.sh --services-ca).
func TestKongYMLShipsThePlaceholderServicesCA(t *testing.T) {
	c, _ := kongRoutes(t)
	raw, err := os.ReadFile(kongYML)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "-----BEGIN CERTIFICATE-----"); n != 1 {
		t.Fatalf("kong.yml holds %d PEM certificates, want 1 (the renderers replace the only one)", n)
	}
	for _, ca := range c.CACertificates {
		b, _ := pem.Decode([]byte(ca.Cert))
		if b == nil {
			t.Fatalf("CA %s: no PEM", ca.ID)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.IsCA || !cert.BasicConstraintsValid || time.Until(cert.NotAfter) < 10*365*24*time.Hour ||
			!strings.Contains(cert.Subject.CommonName, "placeholder") {
			t.Errorf("CA %s: %s, CA %v, until %s; want the long-lived placeholder CA", ca.ID, cert.Subject, cert.IsCA, cert.NotAfter)
		}
	}
}

func TestParseRefusesDanglingTLSReferences(t *testing.T) {
	base := `_format_version: "3.0"
certificates:
- {id: c1, cert: "{vault://env/a}", key: "{vault://env/b}"}
upstreams:
- {name: svc, host_header: svc, targets: [{target: "svc:8080"}]}
services:
- name: svc
  protocol: https
  host: svc
  client_certificate: %s
  ca_certificates: [%s]
  routes: [{name: r, paths: [/x]}]
ca_certificates:
- id: ca1
  cert: |
    -----BEGIN CERTIFICATE-----
    eA==
    -----END CERTIFICATE-----
`
	if _, err := Parse([]byte(strings.NewReplacer("%s", "c1").Replace(strings.Replace(base, "[%s]", "[ca1]", 1)))); err != nil {
		t.Fatalf("a consistent file refused: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(strings.Replace(base, "[%s]", "[ca1]", 1), "%s", "nope", 1),
		strings.Replace(strings.Replace(base, "[%s]", "[nope]", 1), "%s", "c1", 1),
		strings.Replace(strings.Replace(strings.Replace(base, "[%s]", "[ca1]", 1), "%s", "c1", 1), `target: "svc:8080"`, `target: "svc"`, 1),
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

package secretgen

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/mtls"
)

// The mTLS files of the hop Kong → services (docs/architecture.md "Workload
// identity"): one development CA signs the edge's client certificate and
// one server certificate per service.
const (
	MTLSCA         = "mtls_ca.crt" // public: the services' TLS_CLIENT_CA_FILE, kong.yml's ca_certificates
	MTLSCAKey      = "mtls_ca.key" // never mounted anywhere (0600): it only signs the next renewal
	EdgeClientCert = "edge_client.crt"
	EdgeClientKey  = "edge_client.key"
	// EdgeClientURI and EdgeClientDNS are the edge's identities (the
	// services' TLS_CLIENT_IDENTITY default is the URI).
	EdgeClientURI = mtls.DefaultClientIdentity
	EdgeClientDNS = "edgeguard-edge"
)

// TLSServices are the services with a server certificate, and their host
// names: the name Kong verifies (kong.yml's upstream host_header, the
// compose service) first, then the Kubernetes Service names.
var TLSServices = map[string][]string{
	"llm-api":   {"llm-api", "llm-api.platform.svc", "llm-api.platform.svc.cluster.local"},
	"media-api": {"media-api", "media-api.platform.svc", "media-api.platform.svc.cluster.local"},
	"mcp-tools": {"mcp-tools", "mcp-tools.mcp.svc", "mcp-tools.mcp.svc.cluster.local"},
}

// ServiceCert and ServiceKey name a service's server certificate files
// (llm-api → llm_api_tls.crt, llm_api_tls.key).
func ServiceCert(service string) string { return strings.ReplaceAll(service, "-", "_") + "_tls.crt" }
func ServiceKey(service string) string  { return strings.ReplaceAll(service, "-", "_") + "_tls.key" }

// Lifetimes of the development certificates: short, renewed by the next
// run once less than RenewBefore is left (make dev runs it every time).
const (
	CALifetime   = 30 * 24 * time.Hour
	LeafLifetime = 7 * 24 * time.Hour
	RenewBefore  = 2 * 24 * time.Hour
)

// TLSFiles lists the mTLS files Generate writes.
func TLSFiles() []string {
	out := []string{MTLSCA, MTLSCAKey, EdgeClientCert, EdgeClientKey}
	for _, s := range sortedServices() {
		out = append(out, ServiceCert(s), ServiceKey(s))
	}
	return out
}

func sortedServices() []string { return []string{"llm-api", "mcp-tools", "media-api"} }

// ensureTLS keeps a valid set and renews what expires within RenewBefore:
// a new CA re-issues every leaf; a leaf is re-issued when it is missing,
// half there, not the CA's, or expiring.
func ensureTLS(dir string, now time.Time) (renewed []string, err error) {
	ca, err := loadCA(dir, now)
	if err != nil {
		return nil, err
	}
	if ca == nil {
		if ca, err = devpki.NewCA("edgeguard dev mTLS CA", devpki.Options{Lifetime: CALifetime, NotBefore: now.Add(-devpki.Backdate)}); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, MTLSCAKey), ca.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, MTLSCA), ca.CertPEM, 0o644); err != nil {
			return nil, err
		}
		renewed = append(renewed, MTLSCA)
	}
	leaves := []struct {
		cert, key string
		issue     func(devpki.Options) (*devpki.Leaf, error)
		o         devpki.Options
	}{{EdgeClientCert, EdgeClientKey, ca.Client, devpki.Options{CommonName: "edgeguard edge (Kong)",
		URIs: []string{EdgeClientURI}, DNSNames: []string{EdgeClientDNS}}}}
	for _, s := range sortedServices() {
		leaves = append(leaves, struct {
			cert, key string
			issue     func(devpki.Options) (*devpki.Leaf, error)
			o         devpki.Options
		}{ServiceCert(s), ServiceKey(s), ca.Server, devpki.Options{CommonName: s, DNSNames: TLSServices[s]}})
	}
	for _, l := range leaves {
		if leafValid(dir, l.cert, l.key, ca.Cert, now) {
			continue
		}
		l.o.Lifetime, l.o.NotBefore = LeafLifetime, now.Add(-devpki.Backdate)
		leaf, err := l.issue(l.o)
		if err != nil {
			return nil, err
		}
		// the key first: a reader that sees the new certificate finds its key
		if err := writeFile(filepath.Join(dir, l.key), leaf.KeyPEM, 0o644); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, l.cert), leaf.CertPEM, 0o644); err != nil {
			return nil, err
		}
		renewed = append(renewed, l.cert)
	}
	return renewed, nil
}

// loadCA returns the CA in dir when it loads and lives longer than
// RenewBefore, nil when it must be made (again).
func loadCA(dir string, now time.Time) (*devpki.CA, error) {
	cb, cerr := os.ReadFile(filepath.Join(dir, MTLSCA))
	kb, kerr := os.ReadFile(filepath.Join(dir, MTLSCAKey))
	if cerr != nil || kerr != nil {
		if (cerr != nil && !errors.Is(cerr, os.ErrNotExist)) || (kerr != nil && !errors.Is(kerr, os.ErrNotExist)) {
			return nil, errors.Join(cerr, kerr)
		}
		return nil, nil
	}
	ca, err := devpki.LoadCA(cb, kb)
	if err != nil || ca.Cert.NotAfter.Sub(now) < RenewBefore {
		return nil, nil // unusable or expiring: a new CA
	}
	return ca, nil
}

func leafValid(dir, certName, keyName string, ca *x509.Certificate, now time.Time) bool {
	cb, err1 := os.ReadFile(filepath.Join(dir, certName))
	kb, err2 := os.ReadFile(filepath.Join(dir, keyName))
	if err1 != nil || err2 != nil {
		return false
	}
	_, leaf, err := mtls.KeyPair(cb, kb)
	if err != nil || leaf.CheckSignatureFrom(ca) != nil || leaf.NotAfter.Sub(now) < RenewBefore || now.Before(leaf.NotBefore) {
		return false
	}
	return true
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// RenderKongYML returns kong.yml (src) with its one PEM certificate — the
// ca_certificates entry that verifies the services, a placeholder CA whose
// key was destroyed in the repository's file — replaced by caPEM (one CA
// certificate), indented as the original. scripts/kong.sh --services-ca
// applies the same rule for local runs.
func RenderKongYML(src, caPEM []byte) ([]byte, error) {
	const begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
	if n := bytes.Count(src, []byte(begin)); n != 1 {
		return nil, fmt.Errorf("kong.yml holds %d PEM certificates, want exactly one (the services CA of ca_certificates)", n)
	}
	block, rest := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" || bytes.Contains(rest, []byte(begin)) {
		return nil, errors.New("the CA file must hold exactly one PEM certificate (Kong takes one per ca_certificates entry)")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !c.IsCA {
		return nil, errors.New("the CA file's certificate is not a CA certificate")
	}
	i := bytes.Index(src, []byte(begin))
	lineStart := bytes.LastIndexByte(src[:i], '\n') + 1
	indent := string(src[lineStart:i])
	if strings.TrimSpace(indent) != "" {
		return nil, errors.New("kong.yml's PEM certificate does not start its line (want a block scalar)")
	}
	j := bytes.Index(src[i:], []byte(end))
	if j < 0 {
		return nil, errors.New("kong.yml's PEM certificate has no end")
	}
	stop := i + j + len(end)
	var b strings.Builder
	for k, line := range strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(block))), "\n") {
		if k > 0 {
			b.WriteString("\n" + indent)
		}
		b.WriteString(line)
	}
	out := append(append(append([]byte{}, src[:i]...), b.String()...), src[stop:]...)
	return out, nil
}

// Package mtlstest gives tests a certificate authority (pkg/devpki) with its
// files on disk, the environment of a service's mTLS listener and TLS
// clients that present the edge's certificate. Every private key it writes
// is registered for the run's secret sweep (pkg/testenv.RecordSecret). It
// is for tests only.
package mtlstest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// Identities of the edge's client certificates (the defaults of
// pkg/mtls and bin/gen-secrets).
const (
	EdgeURI = "spiffe://edgeguard/edge"
	EdgeDNS = "edgeguard-edge"
)

// PKI is a CA with a folder for its files.
type PKI struct {
	CA  *devpki.CA
	Dir string
}

// New makes a CA named name with its certificate in Dir/ca.crt.
func New(t testing.TB, name string) *PKI {
	t.Helper()
	ca, err := devpki.NewCA(name, devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	Record(ca.KeyPEM)
	p := &PKI{CA: ca, Dir: t.TempDir()}
	write(t, filepath.Join(p.Dir, "ca.crt"), ca.CertPEM)
	return p
}

// CAFile is the path of the CA certificate.
func (p *PKI) CAFile() string { return filepath.Join(p.Dir, "ca.crt") }

// Server issues a server certificate for the DNS names.
func (p *PKI) Server(t testing.TB, names ...string) *devpki.Leaf {
	t.Helper()
	l, err := p.CA.Server(devpki.Options{CommonName: names[0], DNSNames: names})
	if err != nil {
		t.Fatal(err)
	}
	Record(l.KeyPEM)
	return l
}

// Client issues a client certificate; the zero Options give the edge's
// identities (EdgeURI, EdgeDNS).
func (p *PKI) Client(t testing.TB, o devpki.Options) *devpki.Leaf {
	t.Helper()
	if len(o.URIs) == 0 && len(o.DNSNames) == 0 && len(o.IPs) == 0 && o.CommonName == "" {
		o = devpki.Options{CommonName: "edgeguard edge", URIs: []string{EdgeURI}, DNSNames: []string{EdgeDNS},
			NotBefore: o.NotBefore, Lifetime: o.Lifetime}
	}
	l, err := p.CA.Client(o)
	if err != nil {
		t.Fatal(err)
	}
	Record(l.KeyPEM)
	return l
}

// WriteLeaf writes l as DIR/name.crt and DIR/name.key (0600) and returns
// the two paths.
func WriteLeaf(t testing.TB, dir, name string, l *devpki.Leaf) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, l.CertPEM)
	writeMode(t, keyFile, l.KeyPEM, 0o600)
	return certFile, keyFile
}

// ServiceEnv is a service's listener environment (TLS_*) for a server
// certificate of p for name, written under t.TempDir(), accepting client
// certificates of clientCA with the edge's URI identity.
func ServiceEnv(t testing.TB, p *PKI, clientCA *PKI, name string) map[string]string {
	t.Helper()
	cert, key := WriteLeaf(t, t.TempDir(), name, p.Server(t, name))
	return map[string]string{
		"TLS_CERT_FILE":       cert,
		"TLS_KEY_FILE":        key,
		"TLS_CLIENT_CA_FILE":  clientCA.CAFile(),
		"TLS_CLIENT_IDENTITY": EdgeURI,
	}
}

// Settings are a service's listener settings (as mtls.Read returns them)
// for a server certificate of p for name, accepting the edge's URI identity
// from clientCA.
func Settings(t testing.TB, p *PKI, clientCA *PKI, name string) mtls.Settings {
	t.Helper()
	env := ServiceEnv(t, p, clientCA, name)
	id, err := mtls.ParseIdentity(EdgeURI)
	if err != nil {
		t.Fatal(err)
	}
	return mtls.Settings{CertFile: env["TLS_CERT_FILE"], KeyFile: env["TLS_KEY_FILE"], ClientCAFile: env["TLS_CLIENT_CA_FILE"],
		ClientIdentities: []mtls.Identity{id}}
}

var (
	configOnce  sync.Once
	configFiles map[string]string
)

// ConfigFiles are TLS_* variables and the contents of the files they name
// (a server certificate, its key, the client CA; made once per test
// binary), for config loaders that read through an in-memory file system.
func ConfigFiles() (vars, files map[string]string) {
	configOnce.Do(func() {
		ca, err := devpki.NewCA("config test CA", devpki.Options{})
		if err != nil {
			panic(err)
		}
		srv, err := ca.Server(devpki.Options{CommonName: "service", DNSNames: []string{"service"}})
		if err != nil {
			panic(err)
		}
		Record(ca.KeyPEM)
		Record(srv.KeyPEM)
		configFiles = map[string]string{"/run/tls/tls.crt": string(srv.CertPEM), "/run/tls/tls.key": string(srv.KeyPEM),
			"/run/tls/ca.crt": string(ca.CertPEM)}
	})
	files = map[string]string{}
	for k, v := range configFiles {
		files[k] = v
	}
	return map[string]string{"TLS_CERT_FILE": "/run/tls/tls.crt", "TLS_KEY_FILE": "/run/tls/tls.key", "TLS_CLIENT_CA_FILE": "/run/tls/ca.crt"}, files
}

// ClientTLS is a client configuration that trusts serverCA, expects the
// server name serverName and presents client (nil: no certificate) whatever
// CAs the server asks for.
func ClientTLS(t testing.TB, serverCA *PKI, serverName string, client *devpki.Leaf) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(serverCA.CA.Cert)
	c := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if client != nil {
		kp, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Always present it, as Kong's nginx does: Go's default would send
		// nothing when the server names other acceptable CAs.
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	return c
}

// Record registers a PEM private key for the secret sweep: every line of
// its base64 body (a leak is found line by line, in a log line or a JSON
// string with escaped newlines) and the whole body on one line.
func Record(key []byte) {
	b, _ := pem.Decode(key)
	if b == nil {
		return
	}
	body := base64.StdEncoding.EncodeToString(b.Bytes)
	vals := []string{body}
	for line := range strings.SplitSeq(string(key), "\n") {
		if line != "" && !strings.HasPrefix(line, "-----") {
			vals = append(vals, line)
		}
	}
	testenv.RecordSecret(vals...)
}

func write(t testing.TB, path string, b []byte) { t.Helper(); writeMode(t, path, b, 0o644) }

func writeMode(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

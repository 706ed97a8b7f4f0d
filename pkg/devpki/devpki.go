// Package devpki is a small certificate authority for development and tests:
// a CA, server certificates for the services (DNS names) and client
// certificates for the edge (a SPIFFE-style URI and a DNS name), all ECDSA
// P-256 with short lifetimes, written as PEM. `make dev` (bin/gen-secrets,
// tests/deploy/secretgen) and the tests of the mTLS hop between Kong and
// the services (pkg/mtls) use it.
//
// It is not for production: there the certificates come from cert-manager,
// a service mesh or SPIRE (docs/architecture.md "Workload identity: mTLS
// from Kong to the services"). Private keys are returned as PEM bytes and
// never printed: Key implements String, GoString and MarshalJSON without
// its value.
package devpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// Default lifetimes: short, so that a forgotten dev certificate dies soon
// and rotation is exercised; the CA outlives what it signs.
const (
	DefaultCALifetime   = 30 * 24 * time.Hour
	DefaultLeafLifetime = 7 * 24 * time.Hour
	// Backdate covers clock skew between the issuer and the verifier.
	Backdate = 5 * time.Minute
)

// Key is a PEM private key (PKCS #8). It never prints its value.
type Key []byte

func (Key) String() string                  { return "[private key]" }
func (Key) GoString() string                { return "devpki.Key([private key])" }
func (Key) MarshalJSON() ([]byte, error)    { return []byte(`"[private key]"`), nil }
func (k Key) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte("[private key]")) }

// CA is a certificate authority that signs leaf certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  Key
	signer  crypto.Signer
}

// Options of a certificate.
type Options struct {
	// CommonName of the subject (informational; identity is in the SANs).
	CommonName string
	// DNSNames, URIs and IPs become the subject alternative names.
	DNSNames []string
	URIs     []string
	IPs      []net.IP
	// NotBefore (default: now − Backdate) and Lifetime (default
	// DefaultLeafLifetime, DefaultCALifetime for a CA) from it.
	NotBefore time.Time
	Lifetime  time.Duration
}

// NewCA makes a self-signed CA.
func NewCA(commonName string, o Options) (*CA, error) {
	if o.Lifetime == 0 {
		o.Lifetime = DefaultCALifetime
	}
	if o.CommonName == "" {
		o.CommonName = commonName
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(o)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	l, err := create(tmpl, tmpl, key, key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: l.Cert, CertPEM: l.CertPEM, KeyPEM: l.KeyPEM, signer: key}, nil
}

// LoadCA reads a CA back from its PEM certificate and key (what NewCA
// wrote), so that a second run of the generator signs with the same CA.
func LoadCA(certPEMBytes, keyPEMBytes []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEMBytes)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("devpki: the CA certificate is not a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devpki: the CA certificate does not parse: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("devpki: the CA certificate is not a CA")
	}
	kb, _ := pem.Decode(keyPEMBytes)
	if kb == nil {
		return nil, errors.New("devpki: the CA key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, errors.New("devpki: the CA key is not a PKCS #8 private key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("devpki: the CA key cannot sign")
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("devpki: the CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: certPEM(cb.Bytes), KeyPEM: Key(keyPEMBytes), signer: signer}, nil
}

// Leaf is an issued certificate and its key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  Key
}

// Server issues a server certificate (extended key usage serverAuth).
func (ca *CA) Server(o Options) (*Leaf, error) {
	return ca.issue(o, x509.ExtKeyUsageServerAuth)
}

// Client issues a client certificate (extended key usage clientAuth).
func (ca *CA) Client(o Options) (*Leaf, error) {
	return ca.issue(o, x509.ExtKeyUsageClientAuth)
}

// Issue issues a certificate with the given extended key usages (tests
// use it for certificates with the wrong usage).
func (ca *CA) Issue(o Options, usages ...x509.ExtKeyUsage) (*Leaf, error) {
	return ca.issue(o, usages...)
}

// ReissueWithKey renews a certificate for the same key: a new serial and
// validity, the names of o or, when o names none, those of l (a renewal
// that keeps the key).
func (ca *CA) ReissueWithKey(l *Leaf, o Options) (*Leaf, error) {
	if len(o.DNSNames) == 0 && len(o.URIs) == 0 && len(o.IPs) == 0 {
		o.DNSNames, o.IPs = l.Cert.DNSNames, l.Cert.IPAddresses
		for _, u := range l.Cert.URIs {
			o.URIs = append(o.URIs, u.String())
		}
	}
	if o.CommonName == "" {
		o.CommonName = l.Cert.Subject.CommonName
	}
	kb, _ := pem.Decode(l.KeyPEM)
	if kb == nil {
		return nil, errors.New("devpki: the key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, errors.New("devpki: the key is not a PKCS #8 private key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("devpki: the key cannot sign")
	}
	return ca.sign(o, signer, l.Cert.ExtKeyUsage...)
}

func (ca *CA) issue(o Options, usages ...x509.ExtKeyUsage) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return ca.sign(o, key, usages...)
}

func (ca *CA) sign(o Options, key crypto.Signer, usages ...x509.ExtKeyUsage) (*Leaf, error) {
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLeafLifetime
	}
	tmpl, err := template(o)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = usages
	return create(tmpl, ca.Cert, key, ca.signer)
}

// create signs tmpl for key with signer (parent's key) and returns the
// certificate with its PEM and key's PEM.
func create(tmpl, parent *x509.Certificate, key, signer crypto.Signer) (*Leaf, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{Cert: cert, CertPEM: certPEM(der), KeyPEM: kp}, nil
}

func template(o Options) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	nb := o.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-Backdate)
	}
	t := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.CommonName, Organization: []string{"edgeguard dev"}},
		NotBefore:    nb,
		NotAfter:     nb.Add(o.Lifetime),
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
	}
	for _, s := range o.URIs {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("devpki: URI SAN %q is not an absolute URI", s)
		}
		t.URIs = append(t.URIs, u)
	}
	return t, nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(k crypto.Signer) (Key, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return Key(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

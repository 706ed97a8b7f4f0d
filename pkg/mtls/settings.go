package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/envconf"
)

// DefaultClientIdentity is TLS_CLIENT_IDENTITY's default: the edge's URI
// SAN in the certificates bin/gen-secrets issues (production sets the
// identity its issuer gives Kong, e.g. a SPIFFE ID of SPIRE).
const DefaultClientIdentity = "spiffe://edgeguard/edge"

// Settings are a service's listener settings (Read).
type Settings struct {
	// Plain (INSECURE_PLAIN_HTTP=true, never in strict mode) serves the
	// public listener over plain HTTP without client certificates.
	Plain bool
	// CertFile (TLS_CERT_FILE), KeyFile (TLS_KEY_FILE) and ClientCAFile
	// (TLS_CLIENT_CA_FILE): required unless Plain.
	CertFile, KeyFile, ClientCAFile string
	// ClientIdentities (TLS_CLIENT_IDENTITY, comma-separated, default
	// DefaultClientIdentity).
	ClientIdentities []Identity
}

// Read reads INSECURE_PLAIN_HTTP, TLS_CERT_FILE, TLS_KEY_FILE,
// TLS_CLIENT_CA_FILE and TLS_CLIENT_IDENTITY through l (its Strict set by
// envconf.Service) and checks that the files load: the certificate with its
// key, the CA bundle. The default is mTLS; plain HTTP must be asked for
// (INSECURE_PLAIN_HTTP=true) and is refused in strict mode. Every fault is
// reported (errors.Join), each starting with its variable's name and never
// carrying a file's content.
func Read(l *envconf.Loader) (Settings, error) {
	var s Settings
	var f envconf.Faults
	plain, err := l.Bool("INSECURE_PLAIN_HTTP", false)
	if f.Add(err) {
		s.Plain = plain
	}
	if s.Plain && l.Strict {
		f.Add(errors.New("INSECURE_PLAIN_HTTP: cannot be true in strict mode (the public listener serves mTLS: TLS_CERT_FILE, TLS_KEY_FILE, TLS_CLIENT_CA_FILE)"))
	}
	s.CertFile = l.Str("TLS_CERT_FILE", "")
	s.KeyFile = l.Str("TLS_KEY_FILE", "")
	s.ClientCAFile = l.Str("TLS_CLIENT_CA_FILE", "")
	for _, v := range l.List("TLS_CLIENT_IDENTITY", []string{DefaultClientIdentity}) {
		id, err := ParseIdentity(v)
		if err != nil {
			f.Add(fmt.Errorf("TLS_CLIENT_IDENTITY: %w", err))
			continue
		}
		s.ClientIdentities = append(s.ClientIdentities, id)
	}
	if s.Plain {
		return s, f.Err()
	}
	hint := " (mTLS is the default; plain HTTP needs INSECURE_PLAIN_HTTP=true, outside strict mode)"
	var certPEM, keyPEM []byte
	for _, v := range []struct {
		name, path, what string
		into             *[]byte
	}{
		{"TLS_CERT_FILE", s.CertFile, "the service's PEM certificate", &certPEM},
		{"TLS_KEY_FILE", s.KeyFile, "its PEM private key", &keyPEM},
		{"TLS_CLIENT_CA_FILE", s.ClientCAFile, "the PEM CA certificates of the edge's client certificate", nil},
	} {
		if v.path == "" {
			f.Add(fmt.Errorf("%s: required, %s%s", v.name, v.what, hint))
			continue
		}
		b, err := l.ReadFile(v.path)
		if err != nil {
			f.Add(fmt.Errorf("%s: cannot read %s", v.name, v.path))
			continue
		}
		if v.into != nil {
			*v.into = b
			continue
		}
		if _, _, err := CAPool(b); err != nil {
			f.Add(fmt.Errorf("TLS_CLIENT_CA_FILE: %s: %w", v.path, err))
		}
	}
	if certPEM != nil && keyPEM != nil {
		_, leaf, err := KeyPair(certPEM, keyPEM)
		switch {
		case err != nil:
			f.Add(fmt.Errorf("TLS_CERT_FILE: %s with TLS_KEY_FILE %s: %w", s.CertFile, s.KeyFile, err))
		case !hasServerAuth(leaf):
			f.Add(fmt.Errorf("TLS_CERT_FILE: %s is not a server certificate (extended key usage serverAuth)", s.CertFile))
		}
	}
	return s, f.Err()
}

// hasServerAuth: no extended key usage (any use) or one that includes
// serverAuth, which verifiers (Kong's OpenSSL) require.
func hasServerAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// Config is the Server configuration of these settings.
func (s Settings) Config(log zerolog.Logger) Config {
	return Config{CertFile: s.CertFile, KeyFile: s.KeyFile, ClientCAFile: s.ClientCAFile,
		ClientIdentities: s.ClientIdentities, Logger: log.With().Str("component", "tls").Logger()}
}

// TLSConfig is the public listener's TLS configuration, or nil for plain
// HTTP (INSECURE_PLAIN_HTTP, logged as a warning). It loads the files.
func (s Settings) TLSConfig(log zerolog.Logger) (*tls.Config, error) {
	if s.Plain {
		log.Warn().Msg("INSECURE_PLAIN_HTTP=true: the public listener serves plain HTTP without client certificates (never in production)")
		return nil, nil
	}
	srv, err := New(s.Config(log))
	if err != nil {
		return nil, err
	}
	leaf := srv.Leaf()
	log.Info().Strs("client_identities", s.identities()).Str("certificate", leaf.Subject.String()).
		Time("not_after", leaf.NotAfter).Dur("check_interval", DefaultCheckInterval).
		Msg("public listener: mTLS (client certificate required)")
	if until := time.Until(leaf.NotAfter); until < 24*time.Hour {
		log.Warn().Time("not_after", leaf.NotAfter).Msg("the service's TLS certificate expires within a day: renew it (the file is re-read without a restart)")
	}
	return srv.TLSConfig(), nil
}

func (s Settings) identities() []string {
	out := make([]string, len(s.ClientIdentities))
	for i, id := range s.ClientIdentities {
		out[i] = id.String()
	}
	return out
}

// Describe is a one-line summary for start-up logs and errors.
func (s Settings) Describe() string {
	if s.Plain {
		return "plain HTTP"
	}
	return "mTLS, client identity " + strings.Join(s.identities(), " or ")
}

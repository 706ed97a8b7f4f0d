// Package mtls is the TLS side of a private service's public listener: it
// serves TLS with the service's certificate and requires a client
// certificate (tls.RequireAndVerifyClientCert) issued by the CA of
// TLS_CLIENT_CA_FILE and carrying the edge's identity (TLS_CLIENT_IDENTITY: a
// URI SAN such as a SPIFFE ID, or a DNS name). A caller without a
// certificate, with one of another CA, an expired one, or one of the right
// CA without the identity is refused during the handshake: no request of
// it reaches a handler. This is the workload identity of the hop Kong →
// service; the edge assertion (X-Edge-Identity, pkg/edgehttp) still decides
// who the user is.
//
// Rotation without a restart: the certificate, its key and the CA bundle are
// files (Kubernetes secret volumes, cert-manager, a SPIRE helper); Server
// looks at them again at most every CheckInterval, on the next handshake,
// and switches to the new set once it loads completely (a certificate that
// does not match its key, a half-written file or an empty CA bundle keeps
// the current set and logs why, once). Connections already open keep the
// certificate they were made with.
//
// Read reads the settings from the environment (TLS_*, INSECURE_PLAIN_HTTP)
// for the services' config loaders. It is not a TLS client: Kong presents
// the client certificate (kong/kong.yml).
package mtls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/logthrottle"
)

// DefaultCheckInterval is how often, at most, the files are looked at again.
const DefaultCheckInterval = time.Second

// Config of a Server.
type Config struct {
	// CertFile (PEM: the certificate, then its chain) and KeyFile (PEM
	// private key) are the server's certificate.
	CertFile, KeyFile string
	// ClientCAFile holds the PEM CA certificates a client certificate must
	// chain to (two during a CA rotation).
	ClientCAFile string
	// ClientIdentities are the accepted client identities (at least one).
	ClientIdentities []Identity
	// CheckInterval (default DefaultCheckInterval) bounds how often the
	// files are looked at again.
	CheckInterval time.Duration
	// Logger gets rotations and refused files (info, warn) and refused
	// client certificates (warn, at most one line per 10 s).
	Logger zerolog.Logger
	// Now is the clock of the file checks (tests; default time.Now). The
	// certificates are verified against the real time.
	Now func() time.Time
}

// Server holds the current certificate set.
type Server struct {
	cfg     Config
	now     func() time.Time
	current atomic.Pointer[state]
	next    atomic.Int64 // unix ns of the next file check
	mu      sync.Mutex   // one reload at a time
	failed  stamps       // the stamps of the last set that did not load (logged once)
	refused logthrottle.Throttle
}

type state struct {
	tls    *tls.Config
	stamps stamps
	leaf   *x509.Certificate
	cas    int
}

// stamps identify the three files' contents without reading them.
type stamps [3]stamp

type stamp struct {
	mod        time.Time
	size       int64
	dev, inode uint64
}

// New loads the files once; an error names what is wrong (never a key).
func New(c Config) (*Server, error) {
	if c.CertFile == "" || c.KeyFile == "" || c.ClientCAFile == "" {
		return nil, errors.New("mtls: the certificate, key and client CA files are required")
	}
	if len(c.ClientIdentities) == 0 {
		return nil, errors.New("mtls: at least one accepted client identity is required")
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	s := &Server{cfg: c, now: c.Now, refused: logthrottle.Throttle{Interval: 10 * time.Second}}
	if s.now == nil {
		s.now = time.Now
	}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.current.Store(st)
	s.next.Store(s.now().Add(c.CheckInterval).UnixNano())
	return s, nil
}

// TLSConfig is the listener's configuration: each handshake gets the
// current set (GetConfigForClient), after a file check when one is due.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.maybeReload()
			return s.current.Load().tls, nil
		},
	}
}

// Leaf is the server certificate in use.
func (s *Server) Leaf() *x509.Certificate { return s.current.Load().leaf }

// Reload looks at the files now (a rotation hook; handshakes do it on their
// own every CheckInterval) and reports whether a new set was loaded.
func (s *Server) Reload() (bool, error) {
	s.next.Store(s.now().Add(s.cfg.CheckInterval).UnixNano())
	return s.reload()
}

func (s *Server) maybeReload() {
	n := s.next.Load()
	now := s.now()
	if now.UnixNano() < n || !s.next.CompareAndSwap(n, now.Add(s.cfg.CheckInterval).UnixNano()) {
		return
	}
	_, _ = s.reload()
}

func (s *Server) reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.current.Load()
	st, err := s.stat()
	if err != nil || st == cur.stamps {
		if err != nil && st != s.failed {
			s.failed = st
			s.cfg.Logger.Warn().Err(err).Msg("tls files unreadable: keeping the current certificate")
		}
		return false, err
	}
	next, err := s.load()
	if err != nil {
		if st != s.failed {
			s.failed = st
			s.cfg.Logger.Warn().Err(err).Msg("tls files changed but do not load: keeping the current certificate")
		}
		return false, err
	}
	s.current.Store(next)
	s.cfg.Logger.Info().Str("subject", next.leaf.Subject.String()).Str("serial", next.leaf.SerialNumber.Text(16)).
		Time("not_after", next.leaf.NotAfter).Int("client_cas", next.cas).Msg("tls certificate and client CAs reloaded")
	return true, nil
}

func (s *Server) stat() (stamps, error) {
	var out stamps
	for i, f := range []string{s.cfg.CertFile, s.cfg.KeyFile, s.cfg.ClientCAFile} {
		fi, err := os.Stat(f) // follows symlinks: a secret volume's swap changes the target
		if err != nil {
			return out, fmt.Errorf("mtls: %s: %w", f, pathErr(err))
		}
		out[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			out[i].dev, out[i].inode = uint64(sys.Dev), sys.Ino
		}
	}
	return out, nil
}

// load reads the three files into a new state. The stamps are taken
// before the reads: a file replaced during the read is read again at the
// next check.
func (s *Server) load() (*state, error) {
	st, err := s.stat()
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(s.cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: certificate %s: %w", s.cfg.CertFile, pathErr(err))
	}
	keyPEM, err := os.ReadFile(s.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: key %s: %w", s.cfg.KeyFile, pathErr(err))
	}
	caPEM, err := os.ReadFile(s.cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: client CA %s: %w", s.cfg.ClientCAFile, pathErr(err))
	}
	cert, leaf, err := KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("mtls: %s and %s: %w", s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	pool, n, err := CAPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("mtls: client CA %s: %w", s.cfg.ClientCAFile, err)
	}
	ids := s.cfg.ClientIdentities
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"http/1.1"},
		// Every new connection is a full handshake that verifies the client
		// certificate against the current CAs and identities (no resumption
		// of a session verified before a rotation).
		SessionTicketsDisabled: true,
		// After the chain is verified (CA, validity, clientAuth usage): the
		// identity. A refusal here fails the handshake.
		VerifyConnection: func(cs tls.ConnectionState) error {
			var leaf *x509.Certificate
			if len(cs.PeerCertificates) > 0 {
				leaf = cs.PeerCertificates[0]
			}
			if err := CheckPeer(leaf, ids); err != nil {
				if n, ok := s.refused.Allow(time.Now()); ok {
					s.cfg.Logger.Warn().Err(err).Uint64("suppressed", n).Msg("client certificate refused")
				}
				return err
			}
			return nil
		},
	}
	return &state{tls: tc, stamps: st, leaf: leaf, cas: n}, nil
}

// KeyPair parses a PEM certificate chain and its private key; errors never
// carry key material.
func KeyPair(certPEM, keyPEM []byte) (tls.Certificate, *x509.Certificate, error) {
	if !bytes.Contains(certPEM, []byte("-----BEGIN CERTIFICATE-----")) {
		return tls.Certificate{}, nil, errors.New("no PEM certificate")
	}
	if !bytes.Contains(keyPEM, []byte("PRIVATE KEY-----")) {
		return tls.Certificate{}, nil, errors.New("no PEM private key")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages name the problem ("private key does not
		// match public key"), never the key.
		return tls.Certificate{}, nil, errors.New("the certificate and the key do not form a pair (" + keyPairReason(err) + ")")
	}
	return cert, cert.Leaf, nil
}

func keyPairReason(err error) string {
	msg := err.Error()
	for _, known := range []string{"private key does not match public key", "failed to parse private key",
		"unknown private key type", "failed to find any PEM data", "failed to find certificate PEM data",
		"failed to find PEM block with type ending in \"PRIVATE KEY\""} {
		if bytes.Contains([]byte(msg), []byte(known)) {
			return known
		}
	}
	return "unreadable"
}

// CAPool parses a PEM bundle of CA certificates; it needs at least one,
// and every block must be a CA certificate.
func CAPool(caPEM []byte) (*x509.CertPool, int, error) {
	pool := x509.NewCertPool()
	n := 0
	rest := caPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("a %q block where CA certificates are expected", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("certificate %d does not parse", n+1)
		}
		if !c.IsCA {
			return nil, 0, fmt.Errorf("certificate %d (%s) is not a CA", n+1, c.Subject)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, 0, errors.New("no PEM CA certificate")
	}
	return pool, n, nil
}

// pathErr keeps the os error's reason (not found, permission) without
// repeating the path.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ErrorLog is an http.Server ErrorLog for a TLS listener: net/http writes a
// line per failed handshake ("http: TLS handshake error from …: …", a
// refused client certificate among them) with the standard logger; this
// sends them to log at warn, at most one line per 10 s.
func ErrorLog(lg zerolog.Logger) *log.Logger {
	return log.New(&errorWriter{log: lg, th: logthrottle.Throttle{Interval: 10 * time.Second}}, "", 0)
}

type errorWriter struct {
	log zerolog.Logger
	th  logthrottle.Throttle
}

func (w *errorWriter) Write(p []byte) (int, error) {
	if n, ok := w.th.Allow(time.Now()); ok {
		w.log.Warn().Str("component", "http").Uint64("suppressed", n).Msg(clip(string(bytes.TrimSpace(p))))
	}
	return len(p), nil
}

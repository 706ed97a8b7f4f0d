package mtls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

// service is an HTTP server on 127.0.0.1 behind a mtls.Server, counting the
// requests that reached its handler.
type service struct {
	addr    string
	srv     *mtls.Server
	handled atomic.Int64
	logs    *syncBuffer
}

type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

func ids(t testing.TB, vals ...string) []mtls.Identity {
	t.Helper()
	var out []mtls.Identity
	for _, v := range vals {
		id, err := mtls.ParseIdentity(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// startService serves cfg's files on a loopback port.
func startService(t testing.TB, cfg mtls.Config) *service {
	t.Helper()
	s := &service{logs: newSyncBuffer()}
	cfg.Logger = zerolog.New(s.logs)
	srv, err := mtls.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.handled.Add(1)
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				w.Header().Set("X-Client-Serial", r.TLS.PeerCertificates[0].SerialNumber.Text(16))
			}
			_, _ = io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          mtls.ErrorLog(zerolog.New(s.logs)),
	}
	go func() { _ = hs.Serve(tls.NewListener(ln, srv.TLSConfig())) }()
	t.Cleanup(func() { _ = hs.Close() })
	return s
}

func client(tc *tls.Config, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tc, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: false,
	}}
}

func get(c *http.Client, addr string) (*http.Response, error) {
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// setup is one CA for the service's certificate and one for the edge's
// client certificates, with the service's files written.
type setup struct {
	serverCA, clientCA *mtlstest.PKI
	dir                string
	certFile, keyFile  string
	cfg                mtls.Config
}

func newSetup(t testing.TB) *setup {
	t.Helper()
	s := &setup{serverCA: mtlstest.New(t, "services CA"), clientCA: mtlstest.New(t, "edge CA"), dir: t.TempDir()}
	s.certFile, s.keyFile = mtlstest.WriteLeaf(t, s.dir, "llm-api", s.serverCA.Server(t, "llm-api"))
	s.cfg = mtls.Config{CertFile: s.certFile, KeyFile: s.keyFile, ClientCAFile: s.clientCA.CAFile(),
		ClientIdentities: ids(t, mtlstest.EdgeURI)}
	return s
}

// TestHandshakeRefusesWhatIsNotTheEdge: without a client certificate, with
// one of another CA, an expired one, one without the clientAuth usage, and
// one of the right CA without the edge's identity (another SAN, the
// identity only in the Common Name), the TLS handshake fails and no request
// reaches the handler; the edge's certificate (URI SAN, or DNS SAN when that
// is the configured identity) gets through.
func TestHandshakeRefusesWhatIsNotTheEdge(t *testing.T) {
	s := newSetup(t)
	other := mtlstest.New(t, "another CA")
	svc := startService(t, s.cfg)
	dnsCfg := s.cfg
	dnsCfg.ClientIdentities = ids(t, "EdgeGuard-Edge.") // canonicalised: edgeguard-edge
	svcDNS := startService(t, dnsCfg)

	expired := s.clientCA.Client(t, devpki.Options{NotBefore: time.Now().Add(-48 * time.Hour), Lifetime: 24 * time.Hour})
	notYet := s.clientCA.Client(t, devpki.Options{NotBefore: time.Now().Add(time.Hour), Lifetime: 24 * time.Hour})
	serverOnly, err := s.clientCA.CA.Issue(devpki.Options{CommonName: "edge", URIs: []string{mtlstest.EdgeURI}})
	if err != nil {
		t.Fatal(err)
	}
	mtlstest.Record(serverOnly.KeyPEM)
	serverUsage, err := s.clientCA.CA.Server(devpki.Options{CommonName: "edge", URIs: []string{mtlstest.EdgeURI}})
	if err != nil {
		t.Fatal(err)
	}
	mtlstest.Record(serverUsage.KeyPEM)

	tests := []struct {
		name   string
		svc    *service
		client *devpki.Leaf
		ok     bool
		reason string // the alert the client gets
	}{
		{"the edge's certificate (URI SAN)", svc, s.clientCA.Client(t, devpki.Options{}), true, ""},
		{"the edge's certificate (DNS SAN identity)", svcDNS, s.clientCA.Client(t, devpki.Options{}), true, ""},
		{"no client certificate", svc, nil, false, "certificate required"},
		{"a certificate of another CA with the edge's identity", svc, other.Client(t, devpki.Options{}), false, "unknown certificate authority"},
		{"an expired certificate of the right CA", svc, expired, false, "expired certificate"},
		{"a certificate of the right CA not valid yet", svc, notYet, false, "expired certificate"},
		{"the right CA, another URI SAN", svc, s.clientCA.Client(t, devpki.Options{CommonName: "x", URIs: []string{"spiffe://edgeguard/llm-api"}}), false, "bad certificate"},
		{"the right CA, the identity as a path prefix", svc, s.clientCA.Client(t, devpki.Options{CommonName: "x", URIs: []string{mtlstest.EdgeURI + "/evil"}}), false, "bad certificate"},
		{"the right CA, the identity only in the Common Name", svc, s.clientCA.Client(t, devpki.Options{CommonName: mtlstest.EdgeURI, DNSNames: []string{"other"}}), false, "bad certificate"},
		{"the right CA, a DNS SAN where a URI is expected", svc, s.clientCA.Client(t, devpki.Options{CommonName: "x", DNSNames: []string{"spiffe"}}), false, "bad certificate"},
		{"the right CA, a wildcard DNS SAN", svcDNS, s.clientCA.Client(t, devpki.Options{CommonName: "x", DNSNames: []string{"*.edge"}}), false, "bad certificate"},
		{"the right CA and identity, extended key usage serverAuth only", svc, serverUsage, false, "bad certificate"},
		{"the right CA and identity, no extended key usage (any use, RFC 5280)", svc, serverOnly, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.svc.handled.Load()
			resp, err := get(client(mtlstest.ClientTLS(t, s.serverCA, "llm-api", tt.client), false), tt.svc.addr)
			if tt.ok {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%v %v; want 200", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("request answered %d; want a refused handshake", resp.StatusCode)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), "tls: "+tt.reason) {
				t.Errorf("error %v; want the TLS alert %q", err, tt.reason)
			}
			if n := tt.svc.handled.Load() - before; n != 0 {
				t.Errorf("%d requests reached the handler", n)
			}
		})
	}
	if !strings.Contains(svc.logs.String(), "client certificate refused") {
		t.Errorf("no refusal logged:\n%s", svc.logs.String())
	}
}

// TestServerNameIsTheServiceHostName: the client (Kong) verifies the
// service's certificate against the host name it dials (llm-api), not an
// IP address; the certificate has no IP SAN.
func TestServerNameIsTheServiceHostName(t *testing.T) {
	s := newSetup(t)
	svc := startService(t, s.cfg)
	edge := s.clientCA.Client(t, devpki.Options{})
	if _, err := get(client(mtlstest.ClientTLS(t, s.serverCA, "llm-api", edge), false), svc.addr); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "media-api"} {
		if _, err := get(client(mtlstest.ClientTLS(t, s.serverCA, name, edge), false), svc.addr); err == nil {
			t.Errorf("server name %q accepted", name)
		}
	}
}

func TestNewNamesWhatIsWrongWithoutTheKey(t *testing.T) {
	s := newSetup(t)
	otherKey := s.serverCA.Server(t, "other").KeyPEM
	mismatch := filepath.Join(t.TempDir(), "mismatch.key")
	if err := os.WriteFile(mismatch, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	notCA := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(notCA, s.serverCA.Server(t, "x").CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(c *mtls.Config)
		want string
	}{
		{"key of another certificate", func(c *mtls.Config) { c.KeyFile = mismatch }, "private key does not match public key"},
		{"missing key", func(c *mtls.Config) { c.KeyFile = filepath.Join(t.TempDir(), "nope") }, "no such file"},
		{"empty CA bundle", func(c *mtls.Config) { c.ClientCAFile = empty }, "no PEM CA certificate"},
		{"a leaf as CA", func(c *mtls.Config) { c.ClientCAFile = notCA }, "is not a CA"},
		{"no identity", func(c *mtls.Config) { c.ClientIdentities = nil }, "identity"},
	}
	for _, tt := range tests {
		cfg := s.cfg
		tt.mod(&cfg)
		_, err := mtls.New(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.name, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), strings.Split(string(otherKey), "\n")[1]) {
			t.Errorf("%s: the error shows key material", tt.name)
		}
	}
}

// load runs clients until stop, counting failures; each client makes new
// connections (a handshake per request) or keeps one alive.
type load struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	done       chan struct{}
	once       sync.Once
}

func runLoad(addr string, clients []*http.Client) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	var running atomic.Int64
	running.Store(int64(len(clients)))
	for _, c := range clients {
		go func() {
			defer func() {
				if running.Add(-1) == 0 {
					close(l.done)
				}
			}()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := get(c, addr)
				if err != nil || resp.StatusCode != 200 {
					l.failed.Add(1)
					if err == nil {
						err = errors.New(resp.Status)
					}
					l.lastErr.Store(err)
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) end() { l.once.Do(func() { close(l.stop) }); <-l.done }

// waitFor polls until f holds or 10 s pass.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replace writes b to path atomically (beside it, then renamed over it).
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRotationUnderLoadFailsNoRequest: continuous requests (new
// connections and kept-alive ones) while the service's certificate and key
// are replaced file by file (a moment where they do not match), written in
// place (a half-written file), swapped Kubernetes-style (a symlinked folder),
// and while the client CA bundle gains a new CA and then loses the old one.
// No request of a valid client fails; the new certificate is served; after
// the old CA is removed, its certificates are refused.
func TestRotationUnderLoadFailsNoRequest(t *testing.T) {
	s := newSetup(t)
	// Kubernetes secret volume layout: files are symlinks into ..data,
	// itself a symlink to a timestamped folder swapped atomically.
	vol := t.TempDir()
	gen := func(n int, cert, key, ca []byte) string {
		d := filepath.Join(vol, "..gen"+string(rune('0'+n)))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": ca} {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	swap := func(d string) {
		tmp := filepath.Join(vol, "..data_tmp")
		_ = os.Remove(tmp)
		if err := os.Symlink(filepath.Base(d), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	first := s.serverCA.Server(t, "llm-api")
	swap(gen(0, first.CertPEM, first.KeyPEM, s.clientCA.CA.CertPEM))
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(vol, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := s.cfg
	cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile = filepath.Join(vol, "tls.crt"), filepath.Join(vol, "tls.key"), filepath.Join(vol, "ca.crt")
	cfg.CheckInterval = 5 * time.Millisecond
	svc := startService(t, cfg)

	edge := s.clientCA.Client(t, devpki.Options{})
	var clients []*http.Client
	for i := range 6 {
		clients = append(clients, client(mtlstest.ClientTLS(t, s.serverCA, "llm-api", edge), i%2 == 0))
	}
	l := runLoad(svc.addr, clients)
	defer l.end()
	serial := func() string { return svc.srv.Leaf().SerialNumber.Text(16) }
	progress := func(what string) {
		t.Helper()
		n := l.ok.Load()
		waitFor(t, what+": requests continue", func() bool { return l.ok.Load() > n+50 })
	}
	progress("start")

	// 1. Kubernetes-style swap of the whole set.
	second := s.serverCA.Server(t, "llm-api")
	swap(gen(1, second.CertPEM, second.KeyPEM, s.clientCA.CA.CertPEM))
	waitFor(t, "the swapped certificate", func() bool { return serial() == second.Cert.SerialNumber.Text(16) })
	progress("after the swap")

	// 2. Plain files replaced one at a time (certificate, pause, key): for a
	// while the pair does not match and the current set stays.
	dir := t.TempDir()
	third := s.serverCA.Server(t, "llm-api")
	certFile, keyFile := mtlstest.WriteLeaf(t, dir, "svc", second)
	caFile := filepath.Join(dir, "ca.crt")
	replace(t, caFile, s.clientCA.CA.CertPEM)
	// point the volume's files at plain files, as a compose bind mount would
	for name, target := range map[string]string{"tls.crt": certFile, "tls.key": keyFile, "ca.crt": caFile} {
		tmp := filepath.Join(vol, name+".tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	progress("after re-pointing the files")
	replace(t, certFile, third.CertPEM)
	time.Sleep(50 * time.Millisecond) // ten checks see a certificate without its key
	if serial() != second.Cert.SerialNumber.Text(16) {
		t.Fatal("a certificate without its key was loaded")
	}
	progress("certificate without its key")
	replace(t, keyFile, third.KeyPEM)
	waitFor(t, "the third certificate", func() bool { return serial() == third.Cert.SerialNumber.Text(16) })

	// 3. Written in place, half first.
	fourth := s.serverCA.Server(t, "llm-api")
	f, err := os.OpenFile(certFile, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(fourth.CertPEM[:len(fourth.CertPEM)/2])
	_ = f.Sync()
	time.Sleep(30 * time.Millisecond)
	progress("half-written certificate")
	_, _ = f.Write(fourth.CertPEM[len(fourth.CertPEM)/2:])
	_ = f.Close()
	replace(t, keyFile, fourth.KeyPEM)
	waitFor(t, "the fourth certificate", func() bool { return serial() == fourth.Cert.SerialNumber.Text(16) })
	progress("after the in-place write")

	// 4. The client CA rotates: both CAs, the edge moves to the new one,
	// then the old CA goes.
	newCA := mtlstest.New(t, "edge CA 2")
	replace(t, caFile, append(append([]byte{}, s.clientCA.CA.CertPEM...), newCA.CA.CertPEM...))
	newEdge := newCA.Client(t, devpki.Options{})
	newClient := client(mtlstest.ClientTLS(t, s.serverCA, "llm-api", newEdge), false)
	waitFor(t, "the new CA accepted", func() bool { _, err := get(newClient, svc.addr); return err == nil })
	progress("both CAs")
	l.end()
	if n := l.failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during the rotations (last: %v)", n, n+l.ok.Load(), l.lastErr.Load())
	}
	t.Logf("%d requests, none failed, through 4 server certificates and a CA rotation", l.ok.Load())

	newLoad := runLoad(svc.addr, []*http.Client{newClient, client(mtlstest.ClientTLS(t, s.serverCA, "llm-api", newEdge), true)})
	defer newLoad.end()
	replace(t, caFile, newCA.CA.CertPEM)
	oldClient := client(mtlstest.ClientTLS(t, s.serverCA, "llm-api", edge), false)
	waitFor(t, "the old CA refused", func() bool { _, err := get(oldClient, svc.addr); return err != nil })
	n := newLoad.ok.Load()
	waitFor(t, "the new CA's clients continue", func() bool { return newLoad.ok.Load() > n+50 })
	newLoad.end()
	if n := newLoad.failed.Load(); n != 0 {
		t.Fatalf("%d requests with the new CA's certificate failed (last: %v)", n, newLoad.lastErr.Load())
	}
	logs := svc.logs.String()
	if !strings.Contains(logs, "tls certificate and client CAs reloaded") || !strings.Contains(logs, "do not load") {
		t.Errorf("rotation logs missing:\n%s", logs)
	}
	if strings.Contains(logs, "PRIVATE KEY") {
		t.Error("a log line shows key material")
	}
}

// TestReloadKeepsTheCurrentSetOnAFault: Reload reports a bad set and keeps
// serving the one that loaded.
func TestReloadKeepsTheCurrentSetOnAFault(t *testing.T) {
	s := newSetup(t)
	srv, err := mtls.New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Leaf().SerialNumber
	replace(t, s.certFile, []byte("not a certificate"))
	if ok, err := srv.Reload(); ok || err == nil {
		t.Fatalf("reload of a broken certificate: %v %v", ok, err)
	}
	if srv.Leaf().SerialNumber.Cmp(before) != 0 {
		t.Fatal("the broken set replaced the current one")
	}
	next := s.serverCA.Server(t, "llm-api")
	replace(t, s.certFile, next.CertPEM)
	replace(t, s.keyFile, next.KeyPEM)
	if ok, err := srv.Reload(); !ok || err != nil {
		t.Fatalf("reload of a good set: %v %v", ok, err)
	}
	if ok, _ := srv.Reload(); ok {
		t.Fatal("an unchanged set reloaded again")
	}
}

func TestErrorLogIsThrottledJSON(t *testing.T) {
	var buf bytes.Buffer
	l := mtls.ErrorLog(zerolog.New(&buf))
	for range 5 {
		l.Printf("http: TLS handshake error from 127.0.0.1:1: remote error: tls: bad certificate")
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), `"level":"warn"`) {
		t.Fatalf("%d lines: %s", n, buf.String())
	}
}

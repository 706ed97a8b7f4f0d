package kong

import (
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

// mtlsUpstream is a service's public listener as the services run it
// (pkg/mtls: TLS with its certificate, the edge's client certificate
// required) on 127.0.0.1, recording which client certificates it saw.
type mtlsUpstream struct {
	addr    string
	n       atomic.Int64
	mu      sync.Mutex
	serials map[string]int // client certificate serial → requests
}

// startMTLSUpstream serves a certificate of serverCA for names, accepting
// client certificates of clientCA with the edge's URI identity.
func startMTLSUpstream(t testing.TB, serverCA, clientCA *mtlstest.PKI, names ...string) *mtlsUpstream {
	t.Helper()
	cert, key := mtlstest.WriteLeaf(t, t.TempDir(), "svc", serverCA.Server(t, names...))
	id, _ := mtls.ParseIdentity(mtlstest.EdgeURI)
	srv, err := mtls.New(mtls.Config{CertFile: cert, KeyFile: key, ClientCAFile: clientCA.CAFile(),
		ClientIdentities: []mtls.Identity{id}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &mtlsUpstream{addr: ln.Addr().String(), serials: map[string]int{}}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.n.Add(1)
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			u.mu.Lock()
			u.serials[r.TLS.PeerCertificates[0].SerialNumber.Text(16)]++
			u.mu.Unlock()
		}
		w.Header().Set("Server", "test-upstream/1.0")
		w.Header().Set("X-Powered-By", "test-framework/2.0")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"upstream":true}`)
	}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: mtls.ErrorLog(zerolog.Nop())}
	go func() { _ = hs.Serve(tls.NewListener(ln, srv.TLSConfig())) }()
	t.Cleanup(func() { _ = hs.Close() })
	return u
}

func (u *mtlsUpstream) saw(serial string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.serials[serial]
}

// edgeClientEnv writes the edge's client certificate and key and returns
// the variables scripts/kong.sh turns into Kong's environment (the image's
// entrypoint rule) for kong.yml's env vault references.
func edgeClientEnv(t testing.TB, l *devpki.Leaf) []string {
	t.Helper()
	cert, key := mtlstest.WriteLeaf(t, t.TempDir(), "edge_client", l)
	return []string{"EDGEGUARD_EDGE_CLIENT_CERT_FILE=" + cert, "EDGEGUARD_EDGE_CLIENT_KEY_FILE=" + key}
}

func serial(l *devpki.Leaf) string { return l.Cert.SerialNumber.Text(16) }

// TestKongYMLVerifiesTheServicesAndPresentsTheEdgeCertificate renders the
// repository's kong.yml (scripts/kong.sh --services-ca, targets rewritten to
// loopback addresses) with the real plugin servers: Kong presents the edge's
// client certificate (the service sees it) and verifies each service's
// certificate against the services CA and the upstream's host name — a
// certificate for another name, or of another CA, is a 502 and the service's
// handler never runs, although the target is an IP address no certificate
// carries.
func TestKongYMLVerifiesTheServicesAndPresentsTheEdgeCertificate(t *testing.T) {
	f := newRepoKong(t)
	edgeSerial := serial(f.edge)
	token := f.token(t)
	good := mustDo(t, http.MethodGet, f.k.proxy+"/v1/models", http.Header{"Authorization": {"Bearer " + token}})
	if good.status != 200 || f.llm.saw(edgeSerial) == 0 {
		t.Fatalf("llm-api through Kong: %d %s; the service saw the edge's certificate %d times", good.status, good.body, f.llm.saw(edgeSerial))
	}
	for _, c := range []struct {
		name, path string
		up         *mtlsUpstream
	}{
		{"media-api answers with a certificate for llm-api", "/v1/media", f.media},
		{"mcp-tools answers with a certificate of another CA", "/v1/mcp", f.mcp},
	} {
		r := mustDo(t, http.MethodGet, f.k.proxy+c.path, http.Header{"Authorization": {"Bearer " + token}})
		if r.status != http.StatusBadGateway || c.up.n.Load() != 0 {
			t.Errorf("%s: %d, the service's handler ran %d times; want 502 and none", c.name, r.status, c.up.n.Load())
		}
	}
	b, err := os.ReadFile(f.k.errorLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `upstream SSL certificate does not match "media-api"`) ||
		!strings.Contains(string(b), "upstream SSL certificate verify error") {
		t.Errorf("Kong's error log does not name the refused certificates:\n%s", lastLines(string(b), 20))
	}
}

// repoKong is the repository's kong.yml in the real Kong with three mTLS
// services on loopback.
type repoKong struct {
	k               *kongInstance
	edge            *devpki.Leaf
	llm, media, mcp *mtlsUpstream
	token           func(testing.TB) string
}

func newRepoKong(t *testing.T) *repoKong {
	t.Helper()
	f := &repoKong{}
	p := jwtIdP(t)
	kc := keycloakStandIn(t, p)
	password := randomSecret(t)
	redis := startPasswordRedis(t, password)
	secrets, _ := secretsDir(t, password)
	ca := mtlstest.New(t, "services CA")
	other := mtlstest.New(t, "another CA")
	f.edge = ca.Client(t, devpki.Options{})
	f.llm = startMTLSUpstream(t, ca, ca, "llm-api")
	f.media = startMTLSUpstream(t, ca, ca, "llm-api")
	f.mcp = startMTLSUpstream(t, other, ca, "mcp-tools")
	root := repoRoot(t)
	f.k = startKong(t, kongOptions{
		yml:        filepath.Join(root, "kong", "kong.yml"),
		secrets:    secrets,
		servicesCA: ca.CAFile(),
		env:        edgeClientEnv(t, f.edge),
		rewrites: []string{
			"http://keycloak:8080=" + kc.URL,
			"target: llm-api:8080=target: " + f.llm.addr,
			"target: media-api:8080=target: " + f.media.addr,
			"target: mcp-tools:8080=target: " + f.mcp.addr,
			"redis:6379=" + redis,
			// one Redis, not the deployments' cluster (scripts/dev.sh's rule)
			"cluster: true=cluster: false",
		},
	})
	f.token = func(t testing.TB) string { return p.Token(t, "u-mtls", map[string]any{"iss": repoIssuer}) }
	return f
}

// edgeCert is one certificates entity of the edge: its PEM inline (it is
// public), or the env vault reference when pem is empty; the key is always
// a vault reference.
type edgeCert struct{ id, pem, keyRef string }

// mtlsConfig is a DB-less configuration of one service (path /svc, no
// plugins) reached over mTLS through the upstream "svc" with the last of
// certs as its client certificate; the others stay defined (a rotation's
// overlap: requests routed with the previous configuration still find
// theirs).
func mtlsConfig(target, caPEM string, certs ...edgeCert) map[string]any {
	var entities []map[string]any
	for _, c := range certs {
		cert := c.pem
		if cert == "" {
			cert = "{vault://env/edgeguard-edge-client-cert}"
		}
		entities = append(entities, map[string]any{"id": c.id, "cert": cert, "key": c.keyRef})
	}
	current := certs[len(certs)-1].id
	return map[string]any{
		"_format_version": "3.0",
		"certificates":    entities,
		"ca_certificates": []map[string]any{{"id": "0a1b2c3d-0000-4000-8000-00000000ca01", "cert": caPEM}},
		"upstreams":       []map[string]any{{"name": "svc", "host_header": "svc", "targets": []map[string]any{{"target": target}}}},
		"services": []map[string]any{{
			"name": "svc", "protocol": "https", "host": "svc", "client_certificate": current, "tls_verify": true,
			"ca_certificates": []string{"0a1b2c3d-0000-4000-8000-00000000ca01"},
			"routes":          []map[string]any{route("svc", "/svc")},
		}},
	}
}

// TestClientCertificateRotatesWithPOSTConfigUnderLoad: continuous requests
// through the real Kong to a service that requires the edge's client
// certificate, while the certificate is replaced through DB-less POST
// /config — a renewal for the same key (the certificate inline, it is
// public; the key still from the env vault), then a new key staged in
// Kong's environment (a second vault reference), each under a new
// certificate id (Kong keys its upstream connection pools on it, so new
// connections carry the new certificate), the previous entity kept for one
// more configuration and then removed. No request fails; the service sees
// each certificate in turn and the replaced ones no more; Kong never misses
// a certificate (requests routed with the previous configuration during a
// reconfigure look up the previous id: it must still be there).
func TestClientCertificateRotatesWithPOSTConfigUnderLoad(t *testing.T) {
	ca := mtlstest.New(t, "services CA")
	first := ca.Client(t, devpki.Options{})
	renewed, err := ca.CA.ReissueWithKey(first, devpki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := ca.Client(t, devpki.Options{})
	_, nextKey := mtlstest.WriteLeaf(t, t.TempDir(), "next", next)
	up := startMTLSUpstream(t, ca, ca, "svc")
	caPEM := string(ca.CA.CertPEM)
	c1 := edgeCert{"0a1b2c3d-0000-4000-8000-000000000001", "", "{vault://env/edgeguard-edge-client-key}"}
	c2 := edgeCert{"0a1b2c3d-0000-4000-8000-000000000002", string(renewed.CertPEM), "{vault://env/edgeguard-edge-client-key}"}
	c3 := edgeCert{"0a1b2c3d-0000-4000-8000-000000000003", string(next.CertPEM), "{vault://env/edgeguard-edge-client-key-next}"}
	k := startKong(t, kongOptions{
		config: mtlsConfig(up.addr, caPEM, c1),
		env:    append(edgeClientEnv(t, first), "EDGEGUARD_EDGE_CLIENT_KEY_NEXT_FILE="+nextKey),
	})
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := cl.Get(k.proxy + "/svc")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				ok.Add(1)
			}
		})
	}
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }); wg.Wait() }
	defer end()
	wait := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s (%d ok, %d failed, last %v; the service answered %d)", what, ok.Load(), failed.Load(), lastErr.Load(), up.n.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	progress := func(what string) {
		t.Helper()
		n := ok.Load()
		wait(what+": requests continue", func() bool { return ok.Load() > n+300 })
	}
	wait("the first certificate", func() bool { return up.saw(serial(first)) > 0 })
	progress("first certificate")

	k.postConfig(t, mtlsConfig(up.addr, caPEM, c1, c2))
	wait("the renewed certificate (same key)", func() bool { return up.saw(serial(renewed)) > 0 })
	progress("renewed certificate")
	k.postConfig(t, mtlsConfig(up.addr, caPEM, c2))
	progress("the first certificate removed")

	k.postConfig(t, mtlsConfig(up.addr, caPEM, c2, c3))
	wait("the certificate with the staged key", func() bool { return up.saw(serial(next)) > 0 })
	progress("new key")
	k.postConfig(t, mtlsConfig(up.addr, caPEM, c3))
	progress("the renewed certificate removed")
	before := [2]int{up.saw(serial(first)), up.saw(serial(renewed))}
	progress("after the rotations")
	if after := [2]int{up.saw(serial(first)), up.saw(serial(renewed))}; after != before {
		t.Errorf("replaced certificates still used after the rotation: %v → %v requests", before, after)
	}
	end()
	t.Logf("%d requests through Kong during two client-certificate rotations (4 reconfigures); the service saw %d, %d and %d with each certificate",
		ok.Load(), up.saw(serial(first)), up.saw(serial(renewed)), up.saw(serial(next)))
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed (last: %v)", n, n+ok.Load(), lastErr.Load())
	}
	b, err := os.ReadFile(k.errorLog)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "unable to fetch upstream client TLS certificate") || strings.Contains(string(b), "unable to resolve reference") {
		t.Errorf("Kong missed a client certificate during the rotation:\n%s", lastLines(string(b), 20))
	}
}

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/keycloak"
)

// TestKeycloakBindsTokensToTheProofKey: the realm's DPoP contract as
// Keycloak 26 serves it (keycloak/README.md "DPoP"). jan-agent requires
// DPoP-bound tokens: a token request without a proof is refused; with one,
// the access and the refresh token carry cnf.jkt = the RFC 7638 thumbprint
// of the proof's key (token_type DPoP), pkg/jwtauth reads it into the
// identity, and a refresh needs a proof of the same key.
func TestKeycloakBindsTokensToTheProofKey(t *testing.T) {
	s := newSuite(t)
	_, user, pw := s.createUser(t)
	k, _, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := dpop.GenerateKey()
	realm := s.kc.RealmURL()
	tokenURL := realm + "/protocol/openid-connect/token"

	dev := s.deviceStart(t, realm, clientAgent)
	first := time.Now()
	var oe *keycloak.OAuthError
	if _, err := s.devicePoll(t, realm, clientAgent, dev.DeviceCode, nil); !errors.As(err, &oe) || oe.Status != 400 || oe.Code != "invalid_request" {
		t.Fatalf("jan-agent poll without a proof: %v, want 400 invalid_request (DPoP proof is missing)", err)
	}
	s.deviceApprove(t, dev, user, pw)
	time.Sleep(time.Until(first.Add(time.Duration(dev.Interval)*time.Second + 200*time.Millisecond)))
	if _, err := s.devicePoll(t, realm, clientAgent, dev.DeviceCode, nil); !errors.As(err, &oe) || oe.Code != "invalid_request" {
		t.Fatalf("jan-agent poll without a proof after approval: %v, want invalid_request", err)
	}
	time.Sleep(time.Duration(dev.Interval)*time.Second + 200*time.Millisecond)
	tok, err := s.devicePoll(t, realm, clientAgent, dev.DeviceCode, k)
	if err != nil {
		t.Fatalf("jan-agent poll with a proof: %v", err)
	}
	if !strings.EqualFold(tok.TokenType, "DPoP") {
		t.Fatalf("token_type %q, want DPoP", tok.TokenType)
	}
	cnf := func(token string) string {
		c, _ := segment(t, token, 1)["cnf"].(map[string]any)
		jkt, _ := c["jkt"].(string)
		return jkt
	}
	if got := cnf(tok.AccessToken); got != k.Thumbprint() {
		t.Fatalf("access token cnf.jkt %q, want the proof key's thumbprint %q", got, k.Thumbprint())
	}
	if got := cnf(tok.RefreshToken); got != k.Thumbprint() {
		t.Fatalf("refresh token cnf.jkt %q, want %q (a public client's refresh token is bound too)", got, k.Thumbprint())
	}
	// Keycloak marks a bound access token with claim typ DPoP (a bearer
	// token's is Bearer); pkg/jwtauth accepts it only with cnf.jkt.
	if typ := segment(t, tok.AccessToken, 1)["typ"]; typ != "DPoP" {
		t.Fatalf("claim typ %v, want DPoP", typ)
	}
	v, _ := s.verifier(t, nil)
	id, err := v.Verify(s.ctx, tok.AccessToken)
	if err != nil || id.ClientID != clientAgent || id.Cnf == nil || id.Cnf.JKT != k.Thumbprint() || !id.HasRole("user") || id.HasRole("admin") {
		t.Fatalf("pkg/jwtauth on a jan-agent token: %+v %v", id, err)
	}

	refresh := func(key *dpop.Key) (*keycloak.Tokens, error) {
		return s.kc.TokenWith(s.ctx, tokenURL, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientAgent},
			"refresh_token": {tok.RefreshToken}}, proofHeader(t, key, http.MethodPost, tokenURL, ""))
	}
	if _, err := refresh(nil); !errors.As(err, &oe) || oe.Status != 400 {
		t.Fatalf("refresh without a proof: %v, want 400", err)
	}
	if _, err := refresh(other); !errors.As(err, &oe) || oe.Code != "invalid_grant" {
		t.Fatalf("refresh with another key's proof: %v, want invalid_grant", err)
	}
	again, err := refresh(k)
	if err != nil || cnf(again.AccessToken) != k.Thumbprint() {
		t.Fatalf("refresh with the key's proof: %v", err)
	}
	// Keycloak remembers proofs at its token endpoint too.
	p := proofHeader(t, k, http.MethodPost, tokenURL, "")
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientAgent}, "refresh_token": {again.RefreshToken}}
	if _, err := s.kc.TokenWith(s.ctx, tokenURL, form, p); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := s.kc.TokenWith(s.ctx, tokenURL, form, p); !errors.As(err, &oe) || oe.Status != 400 {
		t.Fatalf("a replayed proof at the token endpoint: %v, want 400", err)
	}
}

// tlsBalancer is nginx terminating TLS (scripts/nginx.sh --tls-cert) in
// front of two more Kong nodes (scripts/kong.sh) on the dev stack's
// rendered kong.yml, their dpop_public_base_url set to the balancer's
// public URL: the production shape of docs/architecture.md "A request's
// path", where Kong never sees the client's scheme and host.
type tlsBalancer struct {
	public string // https://localhost:<port>
	cert   string // its certificate (PEM), for clients to trust
	nodes  [2]string
	client *http.Client
}

var (
	balancerOnce sync.Once
	balancer     *tlsBalancer
	balancerErr  string
)

// tlsBalancer starts the balancer and its two Kong nodes once per run;
// they stop with the dev stack (TestMain).
func (e *edgeStack) tlsBalancer(t *testing.T) *tlsBalancer {
	t.Helper()
	balancerOnce.Do(func() {
		// a throw-away *testing.T would not do: start failures are reported
		// to the first caller, and later callers see them too
		ok := false
		defer func() {
			if !ok && balancerErr == "" {
				balancerErr = "the TLS balancer did not start (see the first test that asked for it)"
			}
		}()
		balancer = startTLSBalancer(t, e)
		ok = true
	})
	if balancer == nil {
		t.Fatal(balancerErr)
	}
	return balancer
}

// startTLSBalancer starts it; its processes stop with the dev stack.
func startTLSBalancer(t *testing.T, e *edgeStack) *tlsBalancer {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "edgeguard-e2e-dpop-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// removed by TestMain after its secret sweep of the logs in it
	extraLogs.addDir(dir)
	certPEM, keyPEM, pool := selfSigned(t, "localhost")
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	b := &tlsBalancer{public: fmt.Sprintf("https://localhost:%d", port), cert: cert}
	logs := os.Getenv("EDGEGUARD_TEST_KONG_LOGS_DIR") // the run's secret sweep, when make test runs
	for i, name := range []string{"a", "b"} {
		kdir := filepath.Join(dir, "kong-"+name)
		args := []string{"start", "--dir", kdir, "--config", filepath.Join(e.Dir(), "kong", "kong.yml"),
			// dev.sh rendered the gateway's public URL (DPoP's htu) into it
			"--rewrite", "dpop_public_base_url: " + e.Env["GATEWAY_PUBLIC_URL"] + "=dpop_public_base_url: " + b.public}
		if logs != "" {
			args = append(args, "--logs", filepath.Join(logs, "e2e-dpop-kong-"+name))
		}
		stop := func() { _, _ = runErr(root, filepath.Join(root, "scripts", "kong.sh"), "stop", "--dir", kdir) }
		e.atStop = append(e.atStop, stop)
		// the same client certificate as the stack's Kong: the services
		// serve mTLS (the rendered kong.yml already has the dev CA)
		out, err := runEnvErr(root, []string{"EDGEGUARD_EDGE_CLIENT_CERT_FILE=" + e.Env["EDGE_CLIENT_CERT_FILE"],
			"EDGEGUARD_EDGE_CLIENT_KEY_FILE=" + e.Env["EDGE_CLIENT_KEY_FILE"]}, filepath.Join(root, "scripts", "kong.sh"), args...)
		if err != nil {
			t.Fatalf("kong.sh start: %v", err)
		}
		env := envLines(out)
		b.nodes[i] = env["KONG_PROXY_URL"]
		if b.nodes[i] == "" {
			t.Fatalf("Kong node %s printed no proxy URL", name)
		}
		extraLogs.add(env["KONG_ERROR_LOG"], env["KONG_ACCESS_LOG"])
	}
	ndir := filepath.Join(dir, "nginx")
	args := []string{"start", "--dir", ndir, "--listen-port", fmt.Sprint(port), "--tls-cert", cert, "--tls-key", key}
	for _, n := range b.nodes {
		args = append(args, "--upstream", strings.TrimPrefix(n, "http://"))
	}
	e.atStop = append(e.atStop, func() { _, _ = runErr(root, filepath.Join(root, "scripts", "nginx.sh"), "stop", "--dir", ndir) })
	out := run(t, root, filepath.Join(root, "scripts", "nginx.sh"), args...)
	if env := envLines(out); env["NGINX_URL"] != fmt.Sprintf("https://127.0.0.1:%d", port) {
		t.Fatalf("nginx: %q", env["NGINX_URL"])
	} else {
		extraLogs.add(env["NGINX_ERROR_LOG"], env["NGINX_ACCESS_LOG"])
	}
	b.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
	}}
	return b
}

// call sends method to base+path with the token under scheme ("Bearer",
// "DPoP") and the proofs given.
func (b *tlsBalancer) call(t *testing.T, base, method, path, scheme, token string, proofs ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", scheme+" "+token)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	res, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, base+path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return answer{res.StatusCode, res.Header, body}
}

// TestDPoPThroughTheTLSBalancerAndTwoKongNodes: Keycloak's DPoP-bound
// tokens at the edge as in production — https to nginx, which ends TLS and
// spreads requests over two Kong nodes that share Redis. A bound token
// with a valid proof for the public URL is 200; the same token without a
// proof, with a proof for another method, URL or key, a replayed proof, a
// stale iat, alg none, HS256 keyed with the public key, a private key in
// the jwk, and the bound token sent as a bearer token are 401 with their
// reason and the DPoP challenge; a flood of one proof sent to both nodes is
// accepted exactly once. jan-cli's tokens are bound too when edgectl (here:
// the test) sends a proof through the gateway.
func TestDPoPThroughTheTLSBalancerAndTwoKongNodes(t *testing.T) {
	s, e := requireEdge(t)
	b := e.tlsBalancer(t)
	_, user, pw := s.createUser(t)
	k, _, err := dpop.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := dpop.GenerateKey()
	tok := s.deviceLoginAs(t, s.kc.RealmURL(), clientAgent, user, pw, k).AccessToken
	if jkt := segment(t, tok, 1)["cnf"]; jkt == nil {
		t.Fatal("jan-agent's token is not bound")
	}
	const path = "/v1/models"
	url := b.public + path
	proof := func(key *dpop.Key, method, u string, o dpop.ProofOptions) string {
		t.Helper()
		if o.AccessToken == "" {
			o.AccessToken = tok
		}
		p, err := key.Proof(method, u, o)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	algs := dpop.DefaultAlgorithms
	invalidProof := dpop.Challenge("edgeguard", dpop.ErrorInvalidProof, algs)
	invalidToken := dpop.Challenge("edgeguard", dpop.ErrorInvalidToken, algs)

	valid := proof(k, http.MethodGet, url, dpop.ProofOptions{})
	if a := b.call(t, b.public, http.MethodGet, path, "DPoP", tok, valid); a.status != 200 {
		t.Fatalf("bound token with a valid proof through TLS: %d %s", a.status, a.body)
	}
	for i, n := range b.nodes { // both nodes, straight: the proof is for the public URL all the same
		if a := b.call(t, n, http.MethodGet, path, "DPoP", tok, proof(k, http.MethodGet, url, dpop.ProofOptions{})); a.status != 200 {
			t.Fatalf("node %d: %d %s", i, a.status, a.body)
		}
	}
	tests := []struct {
		name   string
		scheme string
		proofs []string
		code   dpop.Reason
		www    string
	}{
		{"no proof", "DPoP", nil, dpop.ReasonProofMissing, invalidProof},
		{"as a bearer token (downgrade)", "Bearer", []string{proof(k, http.MethodGet, url, dpop.ProofOptions{})}, dpop.ReasonDowngrade, invalidToken},
		{"proof for another method", "DPoP", []string{proof(k, http.MethodPost, url, dpop.ProofOptions{})}, dpop.ReasonMethod, invalidProof},
		{"proof for another URL", "DPoP", []string{proof(k, http.MethodGet, b.public+"/v1/embeddings", dpop.ProofOptions{})}, dpop.ReasonURL, invalidProof},
		{"proof for Kong's own address (behind TLS)", "DPoP", []string{proof(k, http.MethodGet, b.nodes[0]+path, dpop.ProofOptions{})}, dpop.ReasonURL, invalidProof},
		{"proof for http instead of https", "DPoP", []string{proof(k, http.MethodGet, strings.Replace(url, "https:", "http:", 1), dpop.ProofOptions{})}, dpop.ReasonURL, invalidProof},
		{"proof of another key", "DPoP", []string{proof(other, http.MethodGet, url, dpop.ProofOptions{})}, dpop.ReasonKeyMismatch, invalidProof},
		{"replayed proof", "DPoP", []string{valid}, dpop.ReasonReplayed, invalidProof},
		{"stale iat", "DPoP", []string{proof(k, http.MethodGet, url, dpop.ProofOptions{Now: time.Now().Add(-2 * time.Minute)})}, dpop.ReasonIssuedAt, invalidProof},
		{"alg none", "DPoP", []string{forgeProof(t, k, map[string]any{"alg": "none"}, http.MethodGet, url, tok, nil)}, dpop.ReasonProofMalformed, invalidProof},
		{"alg none with a signature", "DPoP", []string{forgeProof(t, k, map[string]any{"alg": "none"}, http.MethodGet, url, tok, func([]byte) []byte { return []byte("x") })}, dpop.ReasonAlgNotAllowed, invalidProof},
		{"HS256 keyed with the public key", "DPoP", []string{forgeProof(t, k, map[string]any{"alg": "HS256"}, http.MethodGet, url, tok, hmacWith(k.PublicJWK()))}, dpop.ReasonAlgNotAllowed, invalidProof},
		{"private key in jwk", "DPoP", []string{forgeProof(t, k, map[string]any{"jwk": privateJWK(t, k)}, http.MethodGet, url, tok, func([]byte) []byte { return []byte("x") })}, dpop.ReasonJWKPrivate, invalidProof},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := b.call(t, b.public, http.MethodGet, path, tc.scheme, tok, tc.proofs...)
			if a.status != 401 || a.code() != string(tc.code) || a.header.Get("WWW-Authenticate") != tc.www {
				t.Fatalf("%d %s %q, want 401 %s %q", a.status, a.code(), a.header.Get("WWW-Authenticate"), tc.code, tc.www)
			}
		})
	}

	// A flood: one valid proof sent 40 times at once, half to each node.
	flood := proof(k, http.MethodGet, url, dpop.ProofOptions{})
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		node := b.nodes[i%2]
		wg.Go(func() {
			a := b.call(t, node, http.MethodGet, path, "DPoP", tok, flood)
			mu.Lock()
			count[fmt.Sprintf("%d %s", a.status, a.code())]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count["200 "] != 1 || count["401 "+string(dpop.ReasonReplayed)] != 39 {
		t.Fatalf("flood of one proof to two nodes: %v, want exactly one 200 and 39 dpop_proof_replayed", count)
	}

	// jan-cli may use DPoP: a device login through the gateway with proofs
	// (Keycloak checks their htu against the gateway's public URL) gives a
	// bound token, which the edge then treats the same way.
	cli := s.deviceLoginAs(t, e.Env["GATEWAY_PUBLIC_URL"]+"/realms/jan", clientCLI, user, pw, other)
	if !strings.EqualFold(cli.TokenType, "DPoP") || segment(t, cli.AccessToken, 1)["azp"] != clientCLI {
		t.Fatalf("jan-cli with a proof: token_type %q", cli.TokenType)
	}
	if a := b.call(t, b.public, http.MethodGet, path, "DPoP", cli.AccessToken, proof(other, http.MethodGet, url, dpop.ProofOptions{AccessToken: cli.AccessToken})); a.status != 200 {
		t.Fatalf("jan-cli bound token with its proof: %d %s", a.status, a.body)
	}
	if a := b.call(t, b.public, http.MethodGet, path, "Bearer", cli.AccessToken); a.status != 401 || a.code() != string(dpop.ReasonDowngrade) {
		t.Fatalf("jan-cli bound token as a bearer token: %d %s", a.status, a.code())
	}
}

// forgeProof builds a proof of k's jwk for method and u with header
// changes, signed by sign over the signing input (nil: no signature).
func forgeProof(t *testing.T, k *dpop.Key, changes map[string]any, method, u, token string, sign func([]byte) []byte) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": k.Algorithm(), "jwk": k.PublicJWK()}
	for n, v := range changes {
		h[n] = v
	}
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(map[string]any{"jti": randHex(12), "htm": method, "htu": u, "iat": time.Now().Unix(), "ath": dpop.TokenHash(token)})
	enc := base64.RawURLEncoding
	in := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	if sign == nil {
		return in + "."
	}
	return in + "." + enc.EncodeToString(sign([]byte(in)))
}

func hmacWith(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

// privateJWK is k's public JWK with a (made-up) private member d: what a
// careless client would send.
func privateJWK(t *testing.T, k *dpop.Key) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(k.PublicJWK(), &m); err != nil {
		t.Fatal(err)
	}
	m["d"] = base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	return m
}

// selfSigned is a P-256 certificate for host (and 127.0.0.1), its key and a
// pool trusting it.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), pool
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run runs a script from the repository root and returns its stdout.
func run(t *testing.T, root, script string, args ...string) string {
	t.Helper()
	out, err := runErr(root, script, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(script), args[0], err)
	}
	return out
}

func runErr(root, script string, args ...string) (string, error) {
	return runEnvErr(root, nil, script, args...)
}

// runEnvErr is runErr with env added to the process environment.
func runEnvErr(root string, env []string, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 20))
	}
	return string(out), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func envLines(out string) map[string]string {
	env := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.TrimSpace(v)
		}
	}
	return env
}

// extraLogs are logs of processes tests started beside the dev stack (the
// DPoP test's Kong nodes and nginx): TestMain sweeps them for secrets too,
// then removes their directories (kept after a failure).
var extraLogs logList

type logList struct {
	mu    sync.Mutex
	files []string
	dirs  []string
}

func (l *logList) addDir(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirs = append(l.dirs, dir)
}

func (l *logList) add(files ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range files {
		if f != "" {
			l.files = append(l.files, f)
		}
	}
}

func (l *logList) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.files...)
}

package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/media-api/internal/app"
	"github.com/edgeguard/edgeguard/services/media-api/internal/config"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media/mediatest"
	"github.com/rs/zerolog"
)

const signingKey = "app-test-url-signing-key-5e0c2a9f7b3d1e8c6a4f"

// The whole service on real listeners and a real directory, its public
// listener over mTLS (the edge's client certificate; a client without one
// is refused in the handshake): the edge's assertion and a Keycloak JWT
// authenticate, an upload becomes a signed download, the owner deletes it;
// the logs (written through redact.Writer, as main does) hold no key,
// token, assertion or signature.
func TestServiceOverMTLS(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	edge, _ := edgeid.NewSigner(priv, "")
	jwks, _ := edgeid.PublicJWKS(priv.Public().(ed25519.PublicKey))
	jwksPath := filepath.Join(dir, "edge-jwks.json")
	keyPath := filepath.Join(dir, "url-key")
	if err := os.WriteFile(jwksPath, jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(signingKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	idp := jwttest.New(t)
	pub, internal := testenv.FreeAddr(t), testenv.FreeAddr(t)
	vars := map[string]string{
		"LISTEN_ADDR": pub, "INTERNAL_LISTEN_ADDR": internal, "LOG_LEVEL": "trace",
		"EDGE_IDENTITY_JWKS_FILE": jwksPath, "MEDIA_URL_SIGNING_KEY_FILE": keyPath,
		"MEDIA_STORAGE_DIR": filepath.Join(dir, "media"), "MEDIA_MAX_BYTES": "65536",
		"AUTH_ACCEPT_JWT": "true", "AUTH_ISSUER": idp.Issuer, "AUTH_JWKS_URL": idp.JWKSURL(), "AUTH_ALLOWED_AZP": "jan-cli",
		"MEDIA_PUBLIC_BASE_URL": "https://" + pub,
	}
	pki := mtlstest.New(t, "test CA")
	for k, v := range mtlstest.ServiceEnv(t, pki, pki, "media-api") {
		vars[k] = v
	}
	// the edge: Kong's client certificate, the service's name as server name
	edgeClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig: mtlstest.ClientTLS(t, pki, "media-api", pki.Client(t, devpki.Options{}))}}
	cfg, err := config.Load(func(k string) string { return vars[k] }, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	log := zerolog.New(redact.Writer(logs)).Level(zerolog.TraceLevel)
	a, err := app.New(cfg, log, app.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitReady(t, "http://"+internal+"/readyz")
	if st, _ := os.Stat(filepath.Join(dir, "media")); st == nil || st.Mode().Perm() != 0o700 {
		t.Fatal("storage directory not created 0700")
	}

	var secrets = []string{signingKey}
	call := func(method, path string, body io.Reader, hdr map[string]string, sub string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+pub+path, body)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if sub != "" {
			as, err := edge.Sign(&identity.Identity{Subject: sub, AuthMethod: identity.MethodAPIKey, APIKeyID: "AbCd1234"},
				"media-api", method, strings.SplitN(path, "?", 2)[0], time.Now())
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, as)
			req.Header.Set(identity.HeaderEdgeIdentity, as)
		}
		resp, err := edgeClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	body := mediatest.JPEG + strings.Repeat("j", 3000)
	resp := call(http.MethodPost, "/v1/media", strings.NewReader(body), map[string]string{"Content-Type": "image/png"}, "alice")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	var m struct {
		ID          string `json:"id"`
		ContentType string `json:"content_type"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if m.ContentType != "image/jpeg" {
		t.Fatalf("stored as %s", m.ContentType)
	}
	tok := idp.Token(t, "alice", nil)
	secrets = append(secrets, tok)
	resp = call(http.MethodPost, "/v1/media/"+m.ID+"/url", nil, map[string]string{"Authorization": "Bearer " + tok}, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("url: %d", resp.StatusCode)
	}
	var u struct{ URL string }
	_ = json.NewDecoder(resp.Body).Decode(&u)
	if !strings.HasPrefix(u.URL, "https://"+pub+"/v1/media/"+m.ID+"/content?") {
		t.Fatalf("url %q", u.URL)
	}
	secrets = append(secrets, u.URL[strings.Index(u.URL, "sig=")+4:])
	stranger := &http.Client{Transport: &http.Transport{TLSClientConfig: mtlstest.ClientTLS(t, pki, "media-api", nil)}}
	if _, err := stranger.Get(u.URL); err == nil || !strings.Contains(err.Error(), "tls: certificate required") {
		t.Fatalf("a client without the edge's certificate: %v; want a refused handshake", err)
	}
	dl, err := edgeClient.Get(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(dl.Body)
	dl.Body.Close()
	if dl.StatusCode != http.StatusOK || string(got) != body || dl.Header.Get("Content-Type") != "image/jpeg" ||
		dl.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(dl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", dl.StatusCode, dl.Header)
	}
	if resp := call(http.MethodGet, "/v1/media/"+m.ID, nil, nil, "mallory"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("other user: %d", resp.StatusCode)
	}
	if resp := call(http.MethodDelete, "/v1/media/"+m.ID, nil, nil, "alice"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	// over the limit with a declared length: refused at once
	resp = call(http.MethodPost, "/v1/media", strings.NewReader(mediatest.PNG+strings.Repeat("p", 70000)), nil, "alice")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize: %d", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	out := logs.String()
	if !strings.Contains(out, "media-api listening") || !strings.Contains(out, `"public_transport":"mTLS, client identity spiffe://edgeguard/edge"`) || !strings.Contains(out, "retention pass") || !strings.Contains(out, `"route":"/v1/media/:id/content"`) ||
		!strings.Contains(out, `"secret":"MEDIA_URL_SIGNING_KEY","backend":"file","outcome":"found","message":"secret access"`) {
		t.Fatalf("expected log lines missing:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("a secret (%.8q…) appears in the logs", s)
		}
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never ready", url)
}

// The built binary refuses to start on a bad configuration with one line
// per fault, each naming its variable (exit 2), and never echoes a secret.
func TestBinaryRefusesBadConfigurationWithOneLinePerFault(t *testing.T) {
	bin := testenv.Binary(t, "media-api")
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	_ = os.WriteFile(short, []byte("tiny-secret-value"), 0o600)
	cases := []struct {
		env  []string
		want string
	}{
		{nil, "EDGE_IDENTITY_JWKS_FILE: required in strict mode"},
		{[]string{"AUTH_ENABLED=false"}, "AUTH_ENABLED: cannot be false in strict mode"},
		{[]string{"STRICT=false", "AUTH_ENABLED=false", "MEDIA_STORAGE_DIR=" + dir, "MEDIA_URL_SIGNING_KEY_FILE=" + short}, "MEDIA_URL_SIGNING_KEY_FILE: 17 bytes, at least 32 required"},
		{[]string{"STRICT=false", "AUTH_ENABLED=false", "MEDIA_STORAGE_DIR=" + dir, "MEDIA_URL_SIGNING_KEY=tiny-secret-value"}, "MEDIA_URL_SIGNING_KEY_FILE: 17 bytes"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, c.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Fatalf("%v: exit %v, stderr %q", c.env, err, stderr.String())
		}
		out := stderr.String()
		found := false
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if !strings.HasPrefix(line, "media-api: configuration error: ") {
				t.Fatalf("%v: a line that is not one fault: %q", c.env, line)
			}
			found = found || strings.Contains(line, c.want)
		}
		if !found || strings.Contains(out, "tiny-secret-value") {
			t.Fatalf("%v: stderr %q", c.env, out)
		}
	}
}

package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/ssrf"
	"github.com/edgeguard/edgeguard/services/media-api/internal/fsstore"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media/mediatest"
	"github.com/edgeguard/edgeguard/services/media-api/internal/server"
	"github.com/edgeguard/edgeguard/services/media-api/internal/signedurl"
	"github.com/rs/zerolog"
)

const serviceName = "media-api"

var signingKey = []byte("media-url-signing-key-9f8e7d6c5b4a39281706f5e4d3c2b1a0")

type harness struct {
	t        testing.TB
	idp      *jwttest.IdP
	edge     *edgeid.Signer
	fs       *fsstore.FS
	store    *mediatest.FailingStore
	svc      *media.Service
	public   http.Handler
	internal http.Handler
	metrics  *httpmetrics.Metrics
	logs     *testenv.Buffer
	// secrets collects every credential and signature the test used: none
	// may appear in the logs.
	secrets []string

	mu  sync.Mutex
	now time.Time
}

type options struct {
	maxBytes  int64
	fetch     *ssrf.Options // nil: fetch disabled
	authOff   bool
	baseURL   string
	retention time.Duration
}

func newHarness(t testing.TB, o options) *harness {
	t.Helper()
	h := &harness{t: t, idp: jwttest.New(t), logs: &testenv.Buffer{}, now: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}
	if o.maxBytes == 0 {
		o.maxBytes = 256 << 10
	}
	if o.retention == 0 {
		o.retention = 30 * 24 * time.Hour
	}
	log := zerolog.New(h.logs).Level(zerolog.TraceLevel)
	fs, _, err := fsstore.Open(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	h.fs = fs
	h.store = &mediatest.FailingStore{Store: fs}
	signer, err := signedurl.New(signingKey, 5*time.Minute, 5*time.Minute, h.clock)
	if err != nil {
		t.Fatal(err)
	}
	var fetcher *http.Client
	if o.fetch != nil {
		fetcher = ssrf.Client(*o.fetch)
	}
	h.svc, err = media.New(media.Config{Store: h.store, MaxBytes: o.maxBytes, Retention: o.retention, Signer: signer,
		PublicBaseURL: o.baseURL, Fetcher: fetcher, Now: h.clock, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	h.edge, _ = edgeid.NewSigner(priv, "")
	jwks, _ := edgeid.PublicJWKS(priv.Public().(ed25519.PublicKey))
	ev, err := edgeid.NewVerifier(jwks, serviceName, h.clock)
	if err != nil {
		t.Fatal(err)
	}
	jv, err := jwtauth.New(jwtauth.Config{Issuers: []jwtauth.Issuer{{Issuer: h.idp.Issuer, JWKSURL: h.idp.JWKSURL()}},
		Audiences: []string{"jan-api"}, AllowedAZP: []string{"jan-cli"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jv.Close)
	// the server's own route policy applies: only the credential chain is
	// the test's
	var auth edgehttp.Authenticator = edgehttp.Chain{&edgehttp.EdgeIdentity{Verifier: ev}, &edgehttp.JWT{Verifier: jv}}
	if o.authOff {
		auth = nil
	}
	h.metrics = httpmetrics.New(serviceName)
	cfg := server.Config{Media: h.svc, Authenticator: auth, Logger: log, Ready: func(context.Context) error { return nil }, Metrics: h.metrics}
	if h.public, err = server.Public(cfg); err != nil {
		t.Fatal(err)
	}
	if h.internal, err = server.Internal(cfg); err != nil {
		t.Fatal(err)
	}
	h.secrets = append(h.secrets, string(signingKey))
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// req is one request to the public router.
type req struct {
	method, path string
	body         io.Reader
	header       map[string]string
	as           string // subject of an edge assertion for this method and path; "" = none
	length       int64  // Content-Length; 0 = from the body when known, -1 = unknown (chunked)
}

func (h *harness) do(r req) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.doT(h.t, r)
}

// doT is do reporting to t (fuzz targets must not use the harness's F).
func (h *harness) doT(t testing.TB, r req) *httptest.ResponseRecorder {
	t.Helper()
	hr := httptest.NewRequest(r.method, r.path, r.body)
	if r.length != 0 {
		hr.ContentLength = r.length
		if r.length < 0 {
			hr.Header.Del("Content-Length")
		}
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.as != "" {
		hr.Header.Set(identity.HeaderEdgeIdentity, h.assertionT(t, r.as, r.method, hr.URL.Path))
	}
	w := httptest.NewRecorder()
	h.public.ServeHTTP(w, hr)
	return w
}

func (h *harness) assertion(sub, method, path string) string {
	h.t.Helper()
	return h.assertionT(h.t, sub, method, path)
}

func (h *harness) assertionT(t testing.TB, sub, method, path string) string {
	t.Helper()
	a, err := h.edge.Sign(&identity.Identity{Subject: sub, Username: "user-" + sub, AuthMethod: identity.MethodJWT,
		RealmRoles: []string{"user"}}, serviceName, method, path, h.clock())
	if err != nil {
		t.Fatal(err)
	}
	h.secrets = append(h.secrets, a)
	return a
}

func (h *harness) token(sub string) string {
	tok := h.idp.Token(h.t, sub, nil)
	h.secrets = append(h.secrets, tok)
	return tok
}

// upload stores body for sub (raw) and returns the answer.
func (h *harness) upload(sub, body, declared string) (*httptest.ResponseRecorder, server.MediaJSON) {
	h.t.Helper()
	w := h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(body),
		header: map[string]string{"Content-Type": declared}, as: sub})
	var m server.MediaJSON
	if w.Code == http.StatusCreated {
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			h.t.Fatal(err)
		}
	}
	return w, m
}

func (h *harness) mustUpload(sub, body string) server.MediaJSON {
	h.t.Helper()
	w, m := h.upload(sub, body, "application/octet-stream")
	if w.Code != http.StatusCreated {
		h.t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	return m
}

// signedURL asks for a download URL of id as sub.
func (h *harness) signedURL(sub, id string) string {
	h.t.Helper()
	w := h.do(req{method: http.MethodPost, path: "/v1/media/" + id + "/url", as: sub})
	if w.Code != http.StatusOK {
		h.t.Fatalf("url: %d %s", w.Code, w.Body)
	}
	var out struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		h.t.Fatal(err)
	}
	if i := strings.Index(out.URL, "sig="); i >= 0 {
		h.secrets = append(h.secrets, out.URL[i+4:])
	}
	return out.URL
}

// files lists the storage directory.
func (h *harness) files() []string {
	h.t.Helper()
	names, err := readDir(h.fs.Dir())
	if err != nil {
		h.t.Fatal(err)
	}
	return names
}

// checkLogs fails when any secret used so far appears in the logs.
func (h *harness) checkLogs() {
	h.t.Helper()
	logs := h.logs.String()
	if logs == "" {
		h.t.Fatal("no logs captured")
	}
	for _, s := range h.secrets {
		if len(s) >= 16 && strings.Contains(logs, s) {
			h.t.Fatalf("a secret (%d bytes, starts %.6q) appears in the logs", len(s), s)
		}
	}
}

func errorCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("not a JSON error (%d): %q", w.Code, w.Body)
	}
	return e.Error.Code
}

func expect(t testing.TB, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if code != "" {
		if got := errorCode(t, w); got != code {
			t.Fatalf("code %q, want %q", got, code)
		}
	}
}

// multipartBody builds a multipart/form-data body.
type part struct {
	field, filename, contentType, body string
}

func multipartBody(t testing.TB, parts ...part) (string, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		hdr := map[string][]string{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.filename != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		hdr["Content-Disposition"] = []string{disp}
		if p.contentType != "" {
			hdr["Content-Type"] = []string{p.contentType}
		}
		w, err := mw.CreatePart(hdr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.body)
	}
	mw.Close()
	return b.String(), mw.FormDataContentType()
}

// loopback allows the tests' remote server (on 127.0.0.2) through the ssrf
// client.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media/mediatest"
	"github.com/edgeguard/edgeguard/services/media-api/internal/server"
)

var idPattern = regexp.MustCompile(`^jan_[a-z2-7]{26}$`)

func png(n int) string { return mediatest.PNG + strings.Repeat("\x00", max(0, n-len(mediatest.PNG))) }

func TestRawUploadIsStoredWithTheSniffedType(t *testing.T) {
	h := newHarness(t, options{})
	body := png(5000)
	// PNG bytes declared as JPEG: the sniffed type wins.
	w, m := h.upload("alice", body, "image/jpeg")
	expect(t, w, http.StatusCreated, "")
	if !idPattern.MatchString(m.ID) || m.ContentType != "image/png" || m.Size != int64(len(body)) {
		t.Fatalf("answer %+v", m)
	}
	if !m.CreatedAt.Equal(h.clock()) || !m.ExpiresAt.Equal(h.clock().Add(30*24*time.Hour)) {
		t.Fatalf("times %v %v", m.CreatedAt, m.ExpiresAt)
	}
	if w.Header().Get("Location") != "/v1/media/"+m.ID {
		t.Fatalf("Location %q", w.Header().Get("Location"))
	}
	var raw map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &raw)
	for _, k := range []string{"id", "content_type", "size", "created_at", "expires_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("answer lacks %q", k)
		}
	}
	if len(raw) != 5 {
		t.Errorf("answer has extra fields: %v", raw)
	}
	for name, head := range map[string]string{"jpeg": mediatest.JPEG, "gif": mediatest.GIF, "webp": mediatest.WebP} {
		w, m := h.upload("alice", head+strings.Repeat("z", 100), "")
		expect(t, w, http.StatusCreated, "")
		if !strings.Contains(m.ContentType, name) {
			t.Errorf("%s stored as %s", name, m.ContentType)
		}
	}
}

func TestMultipartUploadWithOneFilePart(t *testing.T) {
	h := newHarness(t, options{})
	body, ct := multipartBody(t, part{field: "file", filename: "cat.html", contentType: "text/html", body: png(3000)})
	w := h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(body), header: map[string]string{"Content-Type": ct}, as: "alice"})
	expect(t, w, http.StatusCreated, "")
	var m server.MediaJSON
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	if m.ContentType != "image/png" || m.Size != 3000 {
		t.Fatalf("answer %+v", m)
	}
}

func TestSpoofedContentTypesAreRefused(t *testing.T) {
	h := newHarness(t, options{})
	hostile := map[string]string{
		"html":        "<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>",
		"svg":         `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="1"/></svg>`,
		"svg-xml":     `<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg"/>`,
		"exe":         "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + strings.Repeat("\x00", 200),
		"pdf":         "%PDF-1.7\n1 0 obj<<>>endobj\n",
		"text":        "just some text pretending to be an image",
		"truncated":   "\x89PNG\r\n",
		"html-in-png": "  <html>\x89PNG\r\n\x1a\n",
	}
	for name, body := range hostile {
		t.Run(name, func(t *testing.T) {
			w, _ := h.upload("alice", body, "image/png")
			expect(t, w, http.StatusUnsupportedMediaType, "unsupported_media_type")
			mb, ct := multipartBody(t, part{field: "file", filename: "x.png", contentType: "image/png", body: body})
			w = h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(mb), header: map[string]string{"Content-Type": ct}, as: "alice"})
			expect(t, w, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
	}
	if f := h.files(); len(f) != 0 {
		t.Fatalf("refused uploads left files: %v", f)
	}
}

// countingReader produces a PNG header followed by zeros, size bytes in
// all, generated lazily, and counts what was read.
type countingReader struct {
	size, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > c.size-c.read {
		n = c.size - c.read
	}
	for i := range p[:n] {
		off := c.read + int64(i)
		if off < int64(len(mediatest.PNG)) {
			p[i] = mediatest.PNG[off]
		} else {
			p[i] = 0
		}
	}
	c.read += n
	return int(n), nil
}

// multipartStream wraps a lazily generated file in multipart framing.
func multipartStream(file io.Reader) (io.Reader, string) {
	const boundary = "edgeguard-test-boundary"
	head := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	return io.MultiReader(strings.NewReader(head), file, strings.NewReader(tail)), "multipart/form-data; boundary=" + boundary
}

// The bar: a 25 MiB upload against a 20 MiB limit is refused
// having read at most limit + 64 KiB.
func TestOversizeUploadIsRefusedWhileStreaming(t *testing.T) {
	const limit = 20 << 20
	const size = 25 << 20
	h := newHarness(t, options{maxBytes: limit})
	cases := []struct {
		name      string
		multipart bool
		length    int64 // -1 chunked, else declared
		maxRead   int64
	}{
		{"raw chunked", false, -1, limit + 64<<10},
		{"multipart chunked", true, -1, limit + 64<<10},
		{"raw with Content-Length", false, size, 0},
		{"multipart with Content-Length", true, size + 300, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := &countingReader{size: size}
			var body io.Reader = src
			ct := "image/png"
			if c.multipart {
				body, ct = multipartStream(src)
			}
			w := h.do(req{method: http.MethodPost, path: "/v1/media", body: body, length: c.length,
				header: map[string]string{"Content-Type": ct}, as: "alice"})
			expect(t, w, http.StatusRequestEntityTooLarge, "media_too_large")
			t.Logf("read %d bytes of %d (limit %d)", src.read, int64(size), limit)
			if src.read > c.maxRead {
				t.Fatalf("read %d bytes of the body, at most %d allowed (limit %d)", src.read, c.maxRead, limit)
			}
			if w.Header().Get("Connection") != "close" {
				t.Fatal("connection not closed after a refused body")
			}
		})
	}
	if f := h.files(); len(f) != 0 {
		t.Fatalf("refused uploads left files: %v", f)
	}
}

func TestUploadOfExactlyTheLimitIsAccepted(t *testing.T) {
	const limit = 64 << 10
	h := newHarness(t, options{maxBytes: limit})
	w, m := h.upload("alice", png(limit), "")
	expect(t, w, http.StatusCreated, "")
	if m.Size != limit {
		t.Fatalf("size %d", m.Size)
	}
	w, _ = h.upload("alice", png(limit+1), "")
	expect(t, w, http.StatusRequestEntityTooLarge, "media_too_large")
	mb, ct := multipartBody(t, part{field: "file", body: png(limit)})
	w = h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(mb), header: map[string]string{"Content-Type": ct}, as: "alice"})
	expect(t, w, http.StatusCreated, "")
	mb, ct = multipartBody(t, part{field: "file", body: png(limit + 1)})
	w = h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(mb), header: map[string]string{"Content-Type": ct}, as: "alice", length: -1})
	expect(t, w, http.StatusRequestEntityTooLarge, "media_too_large")
}

func TestMalformedUploadsAreRefusedAndLeaveNothing(t *testing.T) {
	h := newHarness(t, options{})
	two, twoCT := multipartBody(t, part{field: "file", body: png(100)}, part{field: "extra", body: "x"})
	wrong, wrongCT := multipartBody(t, part{field: "image", body: png(100)})
	ok, okCT := multipartBody(t, part{field: "file", body: png(100)})
	truncated := ok[:len(ok)-20]
	cases := []struct {
		name, body, ct, code string
		status               int
	}{
		{"empty raw", "", "image/png", "empty_body", 400},
		{"empty multipart part", strings.Replace(ok, png(100), "", 1), okCT, "empty_body", 400},
		{"no boundary", ok, "multipart/form-data", "invalid_multipart", 400},
		{"mixed", ok, strings.Replace(okCT, "form-data", "mixed", 1), "invalid_multipart", 400},
		{"long boundary", ok, "multipart/form-data; boundary=" + strings.Repeat("b", 71), "invalid_multipart", 400},
		{"garbage", "this is not multipart", okCT, "invalid_multipart", 400},
		{"two parts", two, twoCT, "invalid_multipart", 400},
		{"wrong field", wrong, wrongCT, "invalid_multipart", 400},
		{"truncated", truncated, okCT, "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(c.body), header: map[string]string{"Content-Type": c.ct}, as: "alice"})
			expect(t, w, c.status, c.code)
		})
	}
	if f := h.files(); len(f) != 0 {
		t.Fatalf("refused uploads left files: %v", f)
	}
}

func TestAnotherUsersMediaDoesNotExist(t *testing.T) {
	h := newHarness(t, options{})
	m := h.mustUpload("alice", png(1000))
	unknown := "jan_" + strings.Repeat("a", 26)
	for _, c := range []struct{ method, suffix string }{
		{http.MethodGet, ""}, {http.MethodPost, "/url"}, {http.MethodDelete, ""},
	} {
		wOther := h.do(req{method: c.method, path: "/v1/media/" + m.ID + c.suffix, as: "mallory"})
		wUnknown := h.do(req{method: c.method, path: "/v1/media/" + unknown + c.suffix, as: "mallory"})
		expect(t, wOther, http.StatusNotFound, "not_found")
		expect(t, wUnknown, http.StatusNotFound, "not_found")
		if wOther.Body.String() != wUnknown.Body.String() {
			t.Fatalf("%s: another user's id answers differently from an unknown id: %s vs %s", c.method, wOther.Body, wUnknown.Body)
		}
		for _, bad := range []string{"jan_short", "JAN_" + strings.Repeat("A", 26), "..%2f..%2fetc%2fpasswd", "jan_" + strings.Repeat("a", 25) + "%00", strings.Repeat("x", 300)} {
			w := h.do(req{method: c.method, path: "/v1/media/" + bad + c.suffix, as: "mallory"})
			expect(t, w, http.StatusNotFound, "not_found")
		}
	}
	w := h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID, as: "alice"})
	expect(t, w, http.StatusOK, "")
	var got server.MediaJSON
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	if got.ID != m.ID || got.Size != 1000 || got.ContentType != "image/png" {
		t.Fatalf("owner's metadata %+v", got)
	}
}

func TestDeleteByTheOwner(t *testing.T) {
	h := newHarness(t, options{})
	m := h.mustUpload("alice", png(1000))
	u := h.signedURL("alice", m.ID)
	expect(t, h.do(req{method: http.MethodDelete, path: "/v1/media/" + m.ID, as: "alice"}), http.StatusNoContent, "")
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID, as: "alice"}), http.StatusNotFound, "not_found")
	expect(t, h.do(req{method: http.MethodDelete, path: "/v1/media/" + m.ID, as: "alice"}), http.StatusNotFound, "not_found")
	expect(t, h.do(req{method: http.MethodGet, path: u}), http.StatusNotFound, "not_found")
	if f := h.files(); len(f) != 0 {
		t.Fatalf("files left: %v", f)
	}
}

func TestSignedDownloadURL(t *testing.T) {
	h := newHarness(t, options{})
	body := png(4000)
	m := h.mustUpload("alice", body)
	other := h.mustUpload("alice", png(10))
	u := h.signedURL("alice", m.ID)
	pu, err := url.Parse(u)
	if err != nil || pu.Path != "/v1/media/"+m.ID+"/content" || pu.Query().Get("exp") == "" || len(pu.Query().Get("sig")) != 43 {
		t.Fatalf("url %q", u)
	}

	// valid, without any credential
	w := h.do(req{method: http.MethodGet, path: u})
	expect(t, w, http.StatusOK, "")
	if w.Body.String() != body {
		t.Fatal("downloaded bytes differ")
	}
	for k, v := range map[string]string{"Content-Type": "image/png", "X-Content-Type-Options": "nosniff",
		"Content-Disposition": `attachment; filename="` + m.ID + `.png"`, "Cache-Control": "private"} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	// a range
	w = h.do(req{method: http.MethodGet, path: u, header: map[string]string{"Range": "bytes=0-7"}})
	if w.Code != http.StatusPartialContent || w.Body.String() != mediatest.PNG[:8] {
		t.Fatalf("range: %d %q", w.Code, w.Body)
	}

	q := pu.Query()
	sig, exp := q.Get("sig"), q.Get("exp")
	flipped := []byte(sig)
	if flipped[5] == 'A' {
		flipped[5] = 'B'
	} else {
		flipped[5] = 'A'
	}
	invalid := map[string]string{
		"tampered sig":  "/v1/media/" + m.ID + "/content?exp=" + exp + "&sig=" + string(flipped),
		"other id":      "/v1/media/" + other.ID + "/content?exp=" + exp + "&sig=" + sig,
		"later exp":     "/v1/media/" + m.ID + "/content?exp=" + fmt.Sprint(mustInt(t, exp)+60) + "&sig=" + sig,
		"no sig":        "/v1/media/" + m.ID + "/content?exp=" + exp,
		"no exp":        "/v1/media/" + m.ID + "/content?sig=" + sig,
		"nothing":       "/v1/media/" + m.ID + "/content",
		"two sigs":      u + "&sig=" + sig,
		"malformed id":  "/v1/media/jan_nope/content?exp=" + exp + "&sig=" + sig,
		"upper-case id": "/v1/media/" + strings.ToUpper(m.ID) + "/content?exp=" + exp + "&sig=" + sig,
	}
	for name, p := range invalid {
		t.Run(name, func(t *testing.T) {
			expect(t, h.do(req{method: http.MethodGet, path: p}), http.StatusForbidden, "url_invalid")
		})
	}
	// a path that climbs out of the route matches no route at all
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/..%2f..%2fetc/content?exp=" + exp + "&sig=" + sig}), http.StatusNotFound, "not_found")
	// an owner credential does not replace the signature
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID + "/content", as: "alice"}), http.StatusForbidden, "url_invalid")

	// expired
	h.advance(5*time.Minute - time.Second)
	expect(t, h.do(req{method: http.MethodGet, path: u}), http.StatusOK, "")
	h.advance(time.Second)
	expect(t, h.do(req{method: http.MethodGet, path: u}), http.StatusForbidden, "url_invalid")
}

func mustInt(t testing.TB, s string) int64 {
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPublicBaseURLPrefixesDownloadURLs(t *testing.T) {
	h := newHarness(t, options{baseURL: "https://gw.example"})
	m := h.mustUpload("alice", png(100))
	if u := h.signedURL("alice", m.ID); !strings.HasPrefix(u, "https://gw.example/v1/media/"+m.ID+"/content?") {
		t.Fatalf("url %q", u)
	}
}

func TestIdentityComesOnlyFromVerifiedCredentials(t *testing.T) {
	h := newHarness(t, options{})
	m := h.mustUpload("alice", png(100))
	path := "/v1/media/" + m.ID

	// forged informational headers alone: 401
	w := h.do(req{method: http.MethodGet, path: path, header: map[string]string{"X-User-ID": "alice", "X-Auth-Method": "apikey"}})
	expect(t, w, http.StatusUnauthorized, "credential_missing")
	if w.Header().Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	// a valid assertion for mallory plus X-User-ID: alice acts as mallory
	w = h.do(req{method: http.MethodGet, path: path, as: "mallory", header: map[string]string{"X-User-ID": "alice"}})
	expect(t, w, http.StatusNotFound, "not_found")
	// an assertion bound to another path or method is refused
	hr := httptest.NewRequest(http.MethodGet, path, nil)
	hr.Header.Set(identity.HeaderEdgeIdentity, h.assertion("alice", http.MethodGet, "/v1/media/"+strings.Repeat("x", 5)))
	rw := httptest.NewRecorder()
	h.public.ServeHTTP(rw, hr)
	expect(t, rw, http.StatusUnauthorized, "edge_identity_invalid")
	hr = httptest.NewRequest(http.MethodDelete, path, nil)
	hr.Header.Set(identity.HeaderEdgeIdentity, h.assertion("alice", http.MethodGet, path))
	rw = httptest.NewRecorder()
	h.public.ServeHTTP(rw, hr)
	expect(t, rw, http.StatusUnauthorized, "edge_identity_invalid")
	// an expired assertion
	a := h.assertion("alice", http.MethodGet, path)
	h.advance(2 * time.Minute)
	hr = httptest.NewRequest(http.MethodGet, path, nil)
	hr.Header.Set(identity.HeaderEdgeIdentity, a)
	rw = httptest.NewRecorder()
	h.public.ServeHTTP(rw, hr)
	expect(t, rw, http.StatusUnauthorized, "edge_identity_invalid")

	// a Keycloak JWT verified by the service
	w = h.do(req{method: http.MethodGet, path: path, header: map[string]string{"Authorization": "Bearer " + h.token("alice")}})
	expect(t, w, http.StatusOK, "")
	w = h.do(req{method: http.MethodGet, path: path, header: map[string]string{"Authorization": "Bearer " + h.token("mallory")}})
	expect(t, w, http.StatusNotFound, "not_found")
	w = h.do(req{method: http.MethodGet, path: path, header: map[string]string{"Authorization": "Bearer " + h.token("alice")[:50]}})
	expect(t, w, http.StatusUnauthorized, "")
	// an API key straight to the service: the edge validates keys, not the service
	w = h.do(req{method: http.MethodGet, path: path, header: map[string]string{"Authorization": "Bearer sk_live_abcdefgh0123456789"}})
	expect(t, w, http.StatusUnauthorized, "credential_not_accepted")
	// every protected route needs a credential
	for _, r := range []req{{method: http.MethodPost, path: "/v1/media"}, {method: http.MethodPost, path: "/v1/media/fetch"},
		{method: http.MethodPost, path: path + "/url"}, {method: http.MethodDelete, path: path}} {
		expect(t, h.do(r), http.StatusUnauthorized, "credential_missing")
	}
}

func TestAuthDisabledAnswers503ButSignedDownloadsWork(t *testing.T) {
	h := newHarness(t, options{authOff: true})
	expect(t, h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(png(10))}), http.StatusServiceUnavailable, "auth_disabled")
}

func TestRetentionHidesAndDeletesOldMedia(t *testing.T) {
	h := newHarness(t, options{retention: 24 * time.Hour})
	old := h.mustUpload("alice", png(100))
	u := h.signedURL("alice", old.ID)
	h.advance(12 * time.Hour)
	young := h.mustUpload("alice", png(100))
	h.advance(12 * time.Hour)
	// old has reached its expiry: gone for every endpoint before the sweep
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + old.ID, as: "alice"}), http.StatusNotFound, "not_found")
	expect(t, h.do(req{method: http.MethodPost, path: "/v1/media/" + old.ID + "/url", as: "alice"}), http.StatusNotFound, "not_found")
	_ = u // its URL expired long ago anyway
	res, err := h.svc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.Scanned != 2 || res.Failed != 0 {
		t.Fatalf("sweep %+v", res)
	}
	if _, err := os.Stat(h.fs.Dir() + "/" + old.ID); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("old bytes still on disk")
	}
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + young.ID, as: "alice"}), http.StatusOK, "")

	// the loop: runs at once, logs its counts
	h.advance(13 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.svc.RunRetention(ctx, 10*time.Millisecond); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.files()) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if f := h.files(); len(f) != 0 {
		t.Fatalf("retention loop left %v", f)
	}
	if !strings.Contains(h.logs.String(), `"deleted":1`) || !strings.Contains(h.logs.String(), "retention pass") {
		t.Fatal("retention pass counts not logged")
	}
}

func TestStorageOutageIs503(t *testing.T) {
	h := newHarness(t, options{})
	m := h.mustUpload("alice", png(100))
	u := h.signedURL("alice", m.ID)
	h.store.SetFail(true)
	for _, r := range []req{
		{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(png(100)), as: "alice"},
		{method: http.MethodGet, path: "/v1/media/" + m.ID, as: "alice"},
		{method: http.MethodDelete, path: "/v1/media/" + m.ID, as: "alice"},
		{method: http.MethodGet, path: u},
	} {
		w := h.do(r)
		expect(t, w, http.StatusServiceUnavailable, "unavailable")
		if w.Header().Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	}
	if strings.Contains(h.logs.String(), "disk on fire") == false {
		t.Fatal("the failure's detail is not logged")
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	h := newHarness(t, options{})
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/other"}), http.StatusNotFound, "not_found")
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/"}), http.StatusNotFound, "not_found")
	expect(t, h.do(req{method: http.MethodPut, path: "/v1/media"}), http.StatusMethodNotAllowed, "method_not_allowed")
	expect(t, h.do(req{method: http.MethodGet, path: "/healthz"}), http.StatusNotFound, "not_found")
}

func TestInternalHealthEndpoints(t *testing.T) {
	h := newHarness(t, options{})
	for _, p := range []string{"/healthz", "/readyz"} {
		w := httptest.NewRecorder()
		h.internal.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	w := httptest.NewRecorder()
	h.internal.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/media", nil))
	expect(t, w, http.StatusNotFound, "not_found")
}

func TestEveryAnswerCarriesARequestID(t *testing.T) {
	h := newHarness(t, options{})
	w := h.do(req{method: http.MethodGet, path: "/v1/media/x", header: map[string]string{"X-Request-ID": "abc-123"}})
	if w.Header().Get("X-Request-ID") != "abc-123" {
		t.Fatal("request id not echoed")
	}
	w = h.do(req{method: http.MethodGet, path: "/v1/media/x", header: map[string]string{"X-Request-ID": "bad id\x01"}})
	if id := w.Header().Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("request id %q", id)
	}
}

// Secrets never reach the logs: the URL signing key, signatures, edge
// assertions and JWTs used by a whole session at trace level.
func TestNoSecretInLogs(t *testing.T) {
	h := newHarness(t, options{})
	m := h.mustUpload("alice", png(100))
	u := h.signedURL("alice", m.ID)
	expect(t, h.do(req{method: http.MethodGet, path: u}), http.StatusOK, "")
	pu, _ := url.Parse(u)
	expect(t, h.do(req{method: http.MethodGet, path: pu.Path + "?exp=" + pu.Query().Get("exp") + "&sig=" + strings.Repeat("A", 43)}), http.StatusForbidden, "url_invalid")
	tok := h.token("alice")
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID, header: map[string]string{"Authorization": "Bearer " + tok}}), http.StatusOK, "")
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID, header: map[string]string{"Authorization": "Bearer " + tok[:len(tok)-3] + "abc"}}), http.StatusUnauthorized, "")
	expect(t, h.do(req{method: http.MethodDelete, path: "/v1/media/" + m.ID, as: "alice"}), http.StatusNoContent, "")
	h.checkLogs()
	if strings.Contains(h.logs.String(), "sig=") || strings.Contains(h.logs.String(), "exp=") {
		t.Fatal("a query string reached the logs")
	}
}

// Hostile inputs are 4xx, never 5xx.
func TestHostileBodiesAreNever5xx(t *testing.T) {
	h := newHarness(t, options{fetch: nil})
	bodies := []struct{ body, ct string }{
		{strings.Repeat("\xff", 10000), "image/png"},
		{"\x00", ""},
		{"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + png(10) + "\r\n--x--\r\n", "multipart/form-data; boundary=x"},
		{"--x\r\n" + strings.Repeat("A: b\r\n", 5000) + "\r\n", "multipart/form-data; boundary=x"},
		{"--x\r\nContent-Disposition: form-data; name=\"file\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=89PNG\r\n--x--\r\n", "multipart/form-data; boundary=x"},
		{png(10), "multipart/form-data; boundary=\"\""},
		{png(10), "multipart/form-data; boundary=x; boundary=y"},
		{png(10), "\x00\x01"},
	}
	for i, b := range bodies {
		w := h.do(req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(b.body), header: map[string]string{"Content-Type": b.ct}, as: "alice"})
		if w.Code >= 500 {
			t.Errorf("body %d: %d %s", i, w.Code, w.Body)
		}
	}
}

// fetch tests share these remote servers.
func newRemote(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	big := png(300 << 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/cat.png":
			w.Header().Set("Content-Type", "text/plain") // the declared type is ignored
			io.WriteString(w, png(2000))
		case "/page.html":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, "<html><script>alert(1)</script></html>")
		case "/big.png":
			io.WriteString(w, big)
		case "/big-chunked.png":
			w.(http.Flusher).Flush()
			io.WriteString(w, big)
		case "/missing":
			http.NotFound(w, r)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		case "/to-internal":
			http.Redirect(w, r, "http://internal.example/", http.StatusFound)
		case "/to-cat":
			http.Redirect(w, r, "/cat.png", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	// The remote listens on 127.0.0.2, the one address the tests' ssrf
	// client allows: 127.0.0.1 (127.1, 0x7f000001, …) stays refused.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

type resolver map[string]string

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netipAddr, error) {
	return lookup(r, host)
}

func fetchReq(h *harness, url string) *httptest.ResponseRecorder {
	b, _ := json.Marshal(map[string]string{"url": url})
	return h.do(req{method: http.MethodPost, path: "/v1/media/fetch", body: bytes.NewReader(b),
		header: map[string]string{"Content-Type": "application/json"}, as: "alice"})
}

func TestRemoteFetch(t *testing.T) {
	srv, hits := newRemote(t)
	port := srv.Listener.Addr().(*netTCPAddr).Port
	res := resolver{"files.example": "127.0.0.2", "internal.example": "10.1.2.3", "meta.example": "169.254.169.254",
		"v6.example": "::1"}
	h := newHarness(t, options{maxBytes: 256 << 10, fetch: fetchOptions(res, 3, 2*time.Second)})
	base := fmt.Sprintf("http://files.example:%d", port)

	w := fetchReq(h, base+"/cat.png")
	expect(t, w, http.StatusCreated, "")
	var m server.MediaJSON
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	if m.ContentType != "image/png" || m.Size != 2000 || !idPattern.MatchString(m.ID) {
		t.Fatalf("fetched %+v", m)
	}
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID, as: "alice"}), http.StatusOK, "")
	expect(t, h.do(req{method: http.MethodGet, path: "/v1/media/" + m.ID, as: "mallory"}), http.StatusNotFound, "not_found")
	expect(t, fetchReq(h, base+"/to-cat"), http.StatusCreated, "")

	before := hits.Load()
	refused := []string{
		"http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://127.1/", "http://0x7f000001/",
		"http://2130706433/", "http://10.0.0.1/", "http://192.168.1.1/", "http://[fd00:ec2::254]/",
		"http://internal.example/", "http://meta.example/", "http://v6.example/", "http://100.64.0.1/",
	}
	for _, u := range refused {
		expect(t, fetchReq(h, u), http.StatusUnprocessableEntity, "fetch_refused")
	}
	if hits.Load() != before {
		t.Fatal("a refused fetch reached a server")
	}
	expect(t, fetchReq(h, base+"/to-metadata"), http.StatusUnprocessableEntity, "fetch_refused")
	expect(t, fetchReq(h, base+"/to-internal"), http.StatusUnprocessableEntity, "fetch_refused")
	expect(t, fetchReq(h, base+"/loop"), http.StatusUnprocessableEntity, "fetch_refused")
	expect(t, fetchReq(h, base+"/page.html"), http.StatusUnsupportedMediaType, "unsupported_media_type")
	expect(t, fetchReq(h, base+"/big.png"), http.StatusRequestEntityTooLarge, "media_too_large")
	expect(t, fetchReq(h, base+"/big-chunked.png"), http.StatusRequestEntityTooLarge, "media_too_large")
	expect(t, fetchReq(h, base+"/missing"), http.StatusBadGateway, "fetch_failed")
	expect(t, fetchReq(h, fmt.Sprintf("http://files.example:%d/", testFreePort(t, "127.0.0.2"))), http.StatusBadGateway, "fetch_failed")
	expect(t, fetchReq(h, "http://nowhere.example/x.png"), http.StatusBadGateway, "fetch_failed")
	expect(t, fetchReq(h, base+"/slow"), http.StatusGatewayTimeout, "fetch_timeout")
	for _, u := range []string{"ftp://files.example/x.png", "file:///etc/passwd", "/relative.png", "http://user:pw@files.example/",
		"http://", "javascript:alert(1)", "http://1.2.3.999/", "http://files.example:99999/", "https://" + strings.Repeat("a", 2100) + ".example/"} {
		expect(t, fetchReq(h, u), http.StatusBadRequest, "invalid_url")
	}
	if f := h.files(); len(f) != 4 { // two fetched objects, bytes + sidecar each
		t.Fatalf("files %v", f)
	}
	h.checkLogs()
}

func TestFetchBodies(t *testing.T) {
	h := newHarness(t, options{fetch: fetchOptions(resolver{}, 3, time.Second)})
	cases := []struct {
		body, ct, code string
		status         int
	}{
		{`{"url":1}`, "application/json", "invalid_field_type", 400},
		{`{"url":"http://x.example/","extra":1}`, "application/json", "unknown_field", 400},
		{`{"url":"http://x.example/"} {}`, "application/json", "invalid_json", 400},
		{`[]`, "application/json", "invalid_json", 400},
		{`null`, "application/json", "invalid_json", 400},
		{`{}`, "application/json", "invalid_url", 400},
		{`{"url":"http://x.example/"}`, "text/plain", "unsupported_media_type", 415},
		{`{"url":"` + strings.Repeat("a", 5000) + `"}`, "application/json", "body_too_large", 413},
	}
	for _, c := range cases {
		w := h.do(req{method: http.MethodPost, path: "/v1/media/fetch", body: strings.NewReader(c.body), header: map[string]string{"Content-Type": c.ct}, as: "alice"})
		expect(t, w, c.status, c.code)
	}
	off := newHarness(t, options{})
	expect(t, fetchReq(off, "https://files.example/x.png"), http.StatusForbidden, "fetch_disabled")
}

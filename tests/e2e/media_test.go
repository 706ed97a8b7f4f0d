package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSignedDownloadNeedsNoToken: a signed media URL is the capability
// (<img src>, shared links): through the gateway it works without any
// credential (kong.yml's media-signed-download route), a tampered or
// unsigned one is refused by media-api, and every other media path still
// needs a credential.
func TestSignedDownloadNeedsNoToken(t *testing.T) {
	s, e := requireEdge(t)
	_, jwt := e.userToken(t, s)

	var img bytes.Buffer
	m := image.NewRGBA(image.Rect(0, 0, 2, 2))
	m.Set(0, 0, color.RGBA{R: 200, A: 255})
	if err := png.Encode(&img, m); err != nil {
		t.Fatal(err)
	}
	up := e.raw(t, http.MethodPost, "/v1/media", jwt, img.Bytes(), http.Header{"Content-Type": {"image/png"}})
	if up.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", up.status, up.body)
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(up.body, &obj); err != nil || obj.ID == "" {
		t.Fatalf("upload answer %s: %v", up.body, err)
	}
	signed := e.do(t, http.MethodPost, "/v1/media/"+obj.ID+"/url", jwt, nil, nil)
	if signed.status != http.StatusOK {
		t.Fatalf("signed URL: %d %s", signed.status, signed.body)
	}
	var su struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(signed.body, &su); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(su.URL)
	if err != nil || !strings.HasSuffix(u.Path, "/"+obj.ID+"/content") || u.Query().Get("sig") == "" {
		t.Fatalf("signed URL %q: %v", su.URL, err)
	}
	pathQuery := u.Path + "?" + u.RawQuery

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		a := e.raw(t, method, pathQuery, "", nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("%s of the signed URL without a credential: %d %s, want 200", method, a.status, a.body)
		}
		if method == http.MethodGet && !bytes.Equal(a.body, img.Bytes()) {
			t.Errorf("the download is not the uploaded image (%d bytes)", len(a.body))
		}
		if a.header.Get("X-Request-ID") == "" {
			t.Errorf("%s: no X-Request-ID (header-guard runs on the route)", method)
		}
	}

	q := u.Query()
	q.Set("sig", strings.Repeat("A", len(q.Get("sig"))))
	for name, p := range map[string]string{
		"tampered signature": u.Path + "?" + q.Encode(),
		"no signature":       u.Path,
	} {
		if a := e.raw(t, http.MethodGet, p, "", nil, nil); a.status != http.StatusForbidden || a.code() != "url_invalid" {
			t.Errorf("%s without a credential: %d %s, want 403 url_invalid from media-api", name, a.status, a.body)
		}
	}
	// Everything else under /v1/media still needs a credential.
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/media/" + obj.ID},
		{http.MethodPost, "/v1/media/" + obj.ID + "/url"},
		{http.MethodDelete, "/v1/media/" + obj.ID},
		{http.MethodPost, pathQuery}, // the signed path with another method
		{http.MethodGet, "/v1/media/" + obj.ID + "/content/x?" + u.RawQuery},
	} {
		if a := e.raw(t, r.method, r.path, "", nil, nil); a.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a credential: %d %s, want 401", r.method, r.path, a.status, a.body)
		}
	}
}

// raw sends body as is (not JSON) to the gateway; path may carry a query.
func (e *edgeStack) raw(t *testing.T, method, path, bearer string, body []byte, extra http.Header) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.gw+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{resp.StatusCode, resp.Header, b}
}

package server_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media/mediatest"
	"github.com/edgeguard/edgeguard/services/media-api/internal/server"
)

var fetchSeeds = []string{
	`{"url":"https://files.example/cat.png"}`, `{"url":"http://127.1/"}`, `{}`, `null`, `[]`, `{"url":1}`,
	`{"url":"a","x":1}`, `{"url":"https://a.example/"} x`, "{\"url\":\"\xff\"}", `{"url":"http://[::1]:80/"}`,
	`{"url":"http://u:p@h/"}`, `{"URL":"https://a.example/"}`, `{"url":"https://a.example/","URL":"http://127.0.0.1/"}`,
	`{"url":"https://a.example/","url":"http://169.254.169.254/"}`, "\xef\xbb\xbf{\"url\":\"https://a.example/\"}",
	`{"url":["https://a.example/"]}`, `{"url":{"$ne":""}}`, `{"__proto__":{"url":"x"}}`, `{"url":"https://a.example/",}`,
	`{"url":"http://[::ffff:127.0.0.1]/"}`, `{"url":"https://a.example/\u0000@evil.example/"}`,
}

// FuzzDecodeFetch: the fetch body decoder never panics; a refusal is a 4xx
// with a code; an accepted body carries an absolute http(s) URL.
func FuzzDecodeFetch(f *testing.F) {
	for _, s := range fetchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := server.DecodeFetch(body)
		if err != nil {
			var in *ginedge.BodyError
			if !errors.As(err, &in) || in.Status < 400 || in.Status >= 500 || in.Code == "" {
				t.Fatalf("refusal %v is not a coded 4xx", err)
			}
			return
		}
		if !strings.HasPrefix(req.URL, "http://") && !strings.HasPrefix(req.URL, "https://") {
			t.Fatalf("accepted %q", req.URL)
		}
	})
}

// FuzzUploadHandler: any body under any Content-Type is answered 201, 400,
// 413 or 415 — never 5xx — and a 201 is always one of the four image types.
func FuzzUploadHandler(f *testing.F) {
	ok, okCT := multipartBody(f, part{field: "file", body: mediatest.PNG})
	f.Add([]byte(mediatest.PNG), "image/png")
	f.Add([]byte(mediatest.GIF), "")
	f.Add([]byte("<svg/>"), "image/svg+xml")
	f.Add([]byte(ok), okCT)
	f.Add([]byte(ok[:len(ok)-5]), okCT)
	f.Add([]byte("--b\r\n\r\n\r\n--b--"), "multipart/form-data; boundary=b")
	h := newHarness(f, options{maxBytes: 8 << 10})
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		w := h.doT(t, req{method: http.MethodPost, path: "/v1/media", body: strings.NewReader(string(body)),
			header: map[string]string{"Content-Type": ct}, as: "fuzz"})
		switch w.Code {
		case http.StatusCreated:
			if !strings.Contains(w.Body.String(), `"content_type":"image/`) {
				t.Fatalf("201 for %q", w.Body)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			_ = errorCode(t, w)
		default:
			t.Fatalf("status %d for %q (%q): %s", w.Code, body, ct, w.Body)
		}
	})
}

// FuzzContentQuery: arbitrary exp/sig query strings on the download route
// are 403 (or 404 for paths that match no route), never 200 or 5xx.
func FuzzContentQuery(f *testing.F) {
	f.Add("jan_abcdefghijklmnopqrstuvwxyz", "exp=1&sig=x")
	f.Add("jan_abcdefghijklmnopqrstuvwxyz", "exp=99999999999&sig="+strings.Repeat("A", 43))
	f.Add("x", "")
	h := newHarness(f, options{})
	f.Fuzz(func(t *testing.T, id, query string) {
		if strings.ContainsAny(id, "/?#% \x00") || !validURLBytes(id+query) {
			return
		}
		w := h.doT(t, req{method: http.MethodGet, path: "/v1/media/" + id + "/content?" + query})
		if w.Code != http.StatusForbidden && w.Code != http.StatusNotFound {
			t.Fatalf("status %d for %q ? %q", w.Code, id, query)
		}
	})
}

func validURLBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '#' {
			return false
		}
	}
	return true
}

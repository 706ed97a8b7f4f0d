package app_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestFetchURLReturnsTheBeginningOfTextFromAPublicAddress(t *testing.T) {
	h := newHarness(t, withEnv("FETCH_URL_MAX_BYTES", "1024"))
	site := publicSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, strings.Repeat("é", 4000)) // 8000 bytes
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ok":true}`)
		case "/image":
			w.Header().Set("Content-Type", "image/png")
			fmt.Fprint(w, "\x89PNG\r\n\x1a\n")
		}
	}))
	port := site.Listener.Addr().String()[strings.LastIndexByte(site.Listener.Addr().String(), ':'):]
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))

	res, m := call(t, s, "fetch_url", map[string]any{"url": "http://public.test" + port + "/page"})
	text, _ := m["text"].(string)
	if res.IsError || m["truncated"] != true || len(text) > 1024 || !strings.HasPrefix(text, "éé") || strings.ContainsRune(text, '\uFFFD') {
		t.Fatalf("page: IsError %v, %d bytes, truncated %v", res.IsError, len(text), m["truncated"])
	}
	if res, m := call(t, s, "fetch_url", map[string]any{"url": site.URL + "/json"}); res.IsError || m["text"] != `{"ok":true}` || m["truncated"] != false {
		t.Fatalf("json: %v", m)
	}
	if res, m := call(t, s, "fetch_url", map[string]any{"url": site.URL + "/image"}); !res.IsError || m["error"] != "not_text" {
		t.Fatalf("image: %v", m)
	}
}

func TestFetchURLRefusesPrivateDestinations(t *testing.T) {
	h := newHarness(t)
	var internalHits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		internalHits.Add(1)
		fmt.Fprint(w, "internal secret")
	}))
	t.Cleanup(internal.Close)
	internalPort := internal.URL[strings.LastIndexByte(internal.URL, ':'):]
	site := publicSite(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	s := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))

	for _, target := range []string{
		internal.URL + "/",                                // 127.0.0.1
		"http://localhost" + internalPort + "/",           // a name for loopback
		"http://loopback.test" + internalPort + "/",       // a DNS name resolving to 127.0.0.1
		"http://169.254.169.254/latest/meta-data/",        // cloud metadata
		"http://metadata.test/latest/meta-data/",          // a name resolving to it
		"http://10.0.0.1/",                                // RFC 1918
		"http://192.168.1.1:8080/",                        // RFC 1918
		"http://[::1]" + internalPort + "/",               // IPv6 loopback
		"http://0x7f000001" + internalPort + "/",          // 127.0.0.1 in hex
		"http://2130706433" + internalPort + "/",          // 127.0.0.1 as a number
		site.URL + "/r?to=" + internal.URL + "/",          // a public page redirecting to loopback
		site.URL + "/r?to=http://169.254.169.254/latest/", // … to metadata
		site.URL + "/r?to=http://10.1.2.3/",               // … to a private address
	} {
		res, m := call(t, s, "fetch_url", map[string]any{"url": target})
		if !res.IsError || m["error"] != "destination_not_allowed" {
			t.Errorf("%s: IsError %v, %v", target, res.IsError, m)
		}
	}
	if n := internalHits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}
}

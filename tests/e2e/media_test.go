package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
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

	u, img := e.signedMediaURL(t, jwt)
	pathQuery := u.Path + "?" + u.RawQuery
	id := path.Base(path.Dir(u.Path)) // /v1/media/<id>/content

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		a := e.raw(t, method, pathQuery, "", nil, nil)
		if a.status != http.StatusOK {
			t.Fatalf("%s of the signed URL without a credential: %d %s, want 200", method, a.status, a.body)
		}
		if method == http.MethodGet && !bytes.Equal(a.body, img) {
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
		{http.MethodGet, "/v1/media/" + id},
		{http.MethodPost, "/v1/media/" + id + "/url"},
		{http.MethodDelete, "/v1/media/" + id},
		{http.MethodPost, pathQuery}, // the signed path with another method
		{http.MethodGet, "/v1/media/" + id + "/content/x?" + u.RawQuery},
	} {
		if a := e.raw(t, r.method, r.path, "", nil, nil); a.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a credential: %d %s, want 401", r.method, r.path, a.status, a.body)
		}
	}
}

// signedMediaURL uploads a small PNG as the holder of jwt and returns its
// signed download URL (media-api's POST /v1/media/<id>/url) and the image.
func (e *edgeStack) signedMediaURL(t *testing.T, jwt string) (*url.URL, []byte) {
	t.Helper()
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
	return u, img.Bytes()
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

// TestSignedDownloadIsLimitedPerClientAddress: the signed-download route
// (attack run item 6) takes no credential, so kong.yml limits it per client
// address (redis-ratelimit limit_by ip, 20/s with a burst of 20): through
// the real Kong, a flood of downloads of one signed URL without any
// credential is answered 200 up to the burst, then 429 rate_limited with
// Retry-After, RateLimit-* and X-RateLimit-*-Second; right after, forged
// X-Forwarded-For, X-Real-IP and Forwarded headers do not open a fresh
// bucket — the limit is on the address Kong decided: the peer when Kong
// does not trust it, the rightmost untrusted X-Forwarded-For entry behind
// the trusted peer (and another client behind that peer is not limited).
// The 429 of a forged request is audited (auth.rate_limited) with the
// decided address. Each client address is the test's own, so no other
// test's limit is spent.
func TestSignedDownloadIsLimitedPerClientAddress(t *testing.T) {
	s, e := requireEdge(t)
	_, jwt := e.userToken(t, s)
	u, _ := e.signedMediaURL(t, jwt)
	target := e.gw + u.Path + "?" + u.RawQuery
	perSecond := signedDownloadPerSecond(t)
	forged := []http.Header{
		{"X-Forwarded-For": {forgedAddr}},
		{"X-Forwarded-For": {forgedAddr + ", 198.18.7.8"}},
		{"X-Real-IP": {forgedAddr}},
		{"Forwarded": {"for=" + forgedAddr}},
	}

	t.Run("a peer Kong does not trust", func(t *testing.T) {
		peer := loopbackPeer()
		e.floodUntilLimited(t, peer, target, nil, perSecond)
		after := e.stillLimited(t, peer, target, nil)
		e.forgedStayLimited(t, peer, target, forged, peer, after, perSecond)
	})

	t.Run("a client behind the trusted peer", func(t *testing.T) {
		client := testNet2Addr()
		own := http.Header{"X-Forwarded-For": {client}}
		e.floodUntilLimited(t, "127.0.0.1", target, own, perSecond)
		after := e.stillLimited(t, "127.0.0.1", target, own)
		chains := []http.Header{
			{"X-Forwarded-For": {forgedAddr + ", " + client}},
			{"X-Forwarded-For": {"198.18.7.8, " + forgedAddr + ", " + client}},
			{"X-Forwarded-For": {forgedAddr + ", " + client}, "X-Real-IP": {forgedAddr}},
			{"X-Forwarded-For": {forgedAddr + ", " + client}, "Forwarded": {"for=" + forgedAddr}},
		}
		e.forgedStayLimited(t, "127.0.0.1", target, chains, client, after, perSecond)
		other := testNet2Addr()
		for other == client {
			other = testNet2Addr()
		}
		if a := e.doFrom(t, "127.0.0.1", http.MethodGet, target, http.Header{"X-Forwarded-For": {other}}); a.status != http.StatusOK {
			t.Errorf("another client (%s) behind the trusted peer: %d %s, want 200 (the limit is per client)", other, a.status, a.body)
		}
	})
}

// signedDownloadPerSecond is kong.yml's per-second limit of the
// media-signed-download route.
func signedDownloadPerSecond(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("../../kong/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	_, route, ok := bytes.Cut(b, []byte("- name: media-signed-download\n"))
	if !ok {
		t.Fatal("kong.yml has no route media-signed-download")
	}
	m := regexp.MustCompile(`(?m)^\s+second:\s*(\d+)`).FindSubmatch(route)
	if m == nil {
		t.Fatal("media-signed-download: no per-second limit in kong.yml")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// floodUntilLimited sends 2×perSecond concurrent downloads of target from
// src without a credential and checks that the burst passed (200 with the
// rate-limit headers) and the rest was refused 429 with its headers.
func (e *edgeStack) floodUntilLimited(t *testing.T, src, target string, header http.Header, perSecond int) {
	t.Helper()
	n := 4 * perSecond
	type sent struct {
		a   answer
		err error
	}
	res := make([]sent, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			res[i].a, res[i].err = e.sendFrom(t, src, http.MethodGet, target, header, nil)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	ok, limited := 0, 0
	for _, r := range res {
		if r.err != nil {
			t.Fatal(r.err)
		}
		switch a := r.a; a.status {
		case http.StatusOK:
			ok++
			if a.header.Get("RateLimit-Limit") == "" || a.header.Get("X-RateLimit-Limit-Second") != strconv.Itoa(perSecond) {
				t.Errorf("200 without the route's rate-limit headers: %v", a.header)
			}
		case http.StatusTooManyRequests:
			limited++
			checkRateLimited(t, a)
		default:
			t.Fatalf("download from %s: %d %s", src, a.status, a.body)
		}
	}
	t.Logf("%d concurrent downloads from %s %v in %v: %d × 200, %d × 429", n, src, header, elapsed.Round(time.Millisecond), ok, limited)
	// GCRA: the burst, then one cell per 1/perSecond s — twice that at
	// most: a decision Redis does not make within the limiter's timeout
	// is the in-process limiter's (on_redis_error: local, pkg/ratelimit),
	// and on a loaded machine (CI, -race) some are, so each limiter may
	// grant a burst (measured: 37 of 40 passed once).
	if most := 2 * (perSecond + 1 + int(elapsed*time.Duration(perSecond)/time.Second)); ok < perSecond || ok > most || limited == 0 {
		t.Fatalf("%d × 200 and %d × 429, want at least the burst (%d) and at most %d passed, the rest 429", ok, limited, perSecond, most)
	}
}

// stillLimited sends single downloads from src until one is refused 429
// (the bucket may have regained a cell since the flood) and returns when
// that one was sent: the client's bucket had no cell from then on.
func (e *edgeStack) stillLimited(t *testing.T, src, target string, header http.Header) time.Time {
	t.Helper()
	for range 10 {
		at := time.Now()
		a := e.doFrom(t, src, http.MethodGet, target, header)
		switch a.status {
		case http.StatusTooManyRequests:
			return at
		case http.StatusOK:
		default:
			t.Fatalf("download from %s: %d %s", src, a.status, a.body)
		}
	}
	t.Fatalf("10 single downloads from %s right after the flood: never 429", src)
	return time.Time{}
}

// forgedStayLimited sends two requests per header set at once, right after
// src's client was refused (at after), and checks they are still limited:
// at most the cells the client's own bucket regained since then pass (one
// per 1/perSecond s; a limit keyed on a forged address would pass them
// all). A refused one is audited with want, the address Kong decided.
func (e *edgeStack) forgedStayLimited(t *testing.T, src, target string, forged []http.Header, want string, after time.Time, perSecond int) {
	t.Helper()
	forged = append(slices.Clone(forged), forged...)
	res := make([]answer, len(forged))
	errs := make([]error, len(forged))
	rids := make([]string, len(forged))
	var wg sync.WaitGroup
	for i, h := range forged {
		rids[i] = "rl-forged-" + randHex(6)
		h = h.Clone()
		h.Set("X-Request-ID", rids[i])
		wg.Go(func() { res[i], errs[i] = e.sendFrom(t, src, http.MethodGet, target, h, nil) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	regained := 1 + int(time.Since(after)*time.Duration(perSecond)/time.Second)
	ok, audited := 0, false
	for i, a := range res {
		switch a.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			checkRateLimited(t, a)
			if !audited {
				audited = true
				rows := e.auditRows(t, rids[i])
				if len(rows) != 1 || rows[0].action != "auth.rate_limited" || rows[0].clientIP != want {
					t.Errorf("the 429 of %v from %s: events %+v, want one auth.rate_limited with client_ip %s", forged[i], src, rows, want)
				}
			}
		default:
			t.Fatalf("download from %s with %v: %d %s", src, forged[i], a.status, a.body)
		}
	}
	t.Logf("forged client addresses from %s right after the flood: %d of %d passed (the bucket regained at most %d)", src, ok, len(forged), regained)
	if ok > regained {
		t.Errorf("%d of %d requests with forged addresses passed, at most %d may: a forged header opened a fresh bucket", ok, len(forged), regained)
	}
	if !audited {
		t.Errorf("none of the %d requests with forged addresses was limited", len(forged))
	}
}

// checkRateLimited checks a 429's code and headers (as TestRateLimitedAtTheEdge).
func checkRateLimited(t *testing.T, a answer) {
	t.Helper()
	if a.code() != "rate_limited" || a.header.Get("Retry-After") == "" || a.header.Get("RateLimit-Remaining") != "0" ||
		a.header.Get("X-RateLimit-Remaining-Second") != "0" {
		t.Errorf("429: code %q, headers %v", a.code(), a.header)
	}
}

// testNet2Addr is a random address of TEST-NET-2 (RFC 5737): clients no
// other test uses (they take TEST-NET-3, clientAddr).
func testNet2Addr() string {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("198.51.100.%d", 1+int(b[0])%254)
}

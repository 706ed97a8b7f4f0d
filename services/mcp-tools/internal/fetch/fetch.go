// Package fetch is fetch_url's reader: it GETs a user-chosen http(s) URL
// through a guarded client (pkg/ssrf's, which refuses loopback, private,
// link-local and metadata addresses after DNS resolution and on every
// redirect) and returns the first MaxBytes of a textual answer as valid
// UTF-8.
//
// It is not an SSRF guard of its own: the address checks belong to the
// Doer it is given, and app wires pkg/ssrf's client. It checks only the URL's
// shape and the answer's content type.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Doer sends a request; pkg/ssrf's *http.Client in production.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Errors of Fetch. A refused destination is the Doer's error, classified by
// Config.Blocked as ErrBlocked.
var (
	ErrInvalidURL  = errors.New("invalid URL")
	ErrBlocked     = errors.New("destination not allowed")
	ErrNotText     = errors.New("the answer is not text")
	ErrUnavailable = errors.New("fetch failed")
)

// MaxURLLen bounds the URL argument.
const MaxURLLen = 2048

// Config configures a Fetcher.
type Config struct {
	Client Doer
	// Blocked reports whether a Doer error is a refused destination
	// (errors.Is(err, ssrf.ErrBlocked) and its kin).
	Blocked func(error) bool
	// MaxBytes is how much of the body is read and returned (default 64 KiB).
	MaxBytes int
	// Timeout bounds one fetch (default 10 s).
	Timeout time.Duration
	// UserAgent is sent on every request.
	UserAgent string
}

// Fetcher fetches text.
type Fetcher struct{ cfg Config }

// New validates cfg and returns a Fetcher.
func New(cfg Config) (*Fetcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("fetch: a guarded client is required")
	}
	if cfg.Blocked == nil {
		cfg.Blocked = func(error) bool { return false }
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "edgeguard-mcp-tools/1"
	}
	return &Fetcher{cfg: cfg}, nil
}

// Page is a fetched answer.
type Page struct {
	URL         string `json:"url"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	Text        string `json:"text"`
	Bytes       int    `json:"bytes"`
	Truncated   bool   `json:"truncated"`
}

// ParseURL checks a fetch_url argument: absolute http or https, a host, no
// credentials, at most MaxURLLen bytes. The fragment is dropped.
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" || len(raw) > MaxURLLen {
		return nil, fmt.Errorf("%w: empty or longer than %d bytes", ErrInvalidURL, MaxURLLen)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("%w: control character or space", ErrInvalidURL)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL", ErrInvalidURL)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: only http and https", ErrInvalidURL)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL", ErrInvalidURL)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// Textual reports whether a Content-Type names text: text/*, JSON, XML,
// JavaScript, and their +json/+xml kin.
func Textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		mt == "application/x-ndjson", mt == "application/yaml",
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// Fetch GETs raw and returns the first MaxBytes of its text.
func (f *Fetcher) Fetch(ctx context.Context, raw string) (*Page, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	req.Header.Set("Accept", "text/*, application/json;q=0.9, application/xml;q=0.9, */*;q=0.1")
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, query included: keep only its cause,
		// so the error can be logged.
		var ue *url.Error
		cause := err
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		if f.cfg.Blocked(err) {
			return nil, fmt.Errorf("%w: %w", ErrBlocked, cause)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	}
	defer resp.Body.Close()

	ct := resp.Header.Get("Content-Type")
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, int64(f.cfg.MaxBytes)+1))
	if readErr != nil && len(body) == 0 {
		if f.cfg.Blocked(readErr) {
			return nil, fmt.Errorf("%w: %w", ErrBlocked, readErr)
		}
		return nil, fmt.Errorf("%w: reading the body: %w", ErrUnavailable, readErr)
	}
	if ct == "" {
		ct = http.DetectContentType(body)
	}
	if !Textual(ct) {
		return nil, fmt.Errorf("%w: %.100s", ErrNotText, ct)
	}
	truncated := len(body) > f.cfg.MaxBytes || readErr != nil
	if len(body) > f.cfg.MaxBytes {
		body = body[:f.cfg.MaxBytes]
	}
	if truncated {
		body = trimPartialRune(body)
	}
	final := u.String()
	if resp.Request != nil && resp.Request.URL != nil {
		final = resp.Request.URL.String() // after redirects
	}
	return &Page{URL: final, Status: resp.StatusCode, ContentType: ct,
		Text: strings.ToValidUTF8(string(body), "\uFFFD"), Bytes: len(body), Truncated: truncated}, nil
}

// trimPartialRune drops a rune cut in half at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax-1 && len(b) > 0; i++ {
		if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size != 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

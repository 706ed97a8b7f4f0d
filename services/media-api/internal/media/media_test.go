package media

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/ssrf"
)

func TestLimitReaderReadsAtMostOneByteOverTheLimit(t *testing.T) {
	for _, size := range []int{0, 1, 99, 100, 101, 10_000} {
		src := &counter{r: strings.NewReader(strings.Repeat("x", size))}
		l := &limitReader{r: src, left: 100}
		n, err := io.Copy(io.Discard, l)
		switch {
		case size <= 100 && (err != nil || n != int64(size)):
			t.Errorf("size %d: read %d, %v", size, n, err)
		case size > 100 && !errors.Is(err, ErrTooLarge):
			t.Errorf("size %d: %v", size, err)
		}
		if src.n > 101 {
			t.Errorf("size %d: %d bytes read from the source", size, src.n)
		}
	}
}

func TestLimitReaderClassifiesSourceErrors(t *testing.T) {
	l := &limitReader{r: errReader{&http.MaxBytesError{Limit: 5}}, left: 10}
	if _, err := l.Read(make([]byte, 4)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxBytesError: %v", err)
	}
	l = &limitReader{r: errReader{ssrf.ErrTooLarge}, left: 10}
	if _, err := l.Read(make([]byte, 4)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ssrf.ErrTooLarge: %v", err)
	}
	boom := errors.New("connection reset")
	l = &limitReader{r: errReader{boom}, left: 10}
	_, err := l.Read(make([]byte, 4))
	var se *SourceError
	if !errors.As(err, &se) || !errors.Is(err, boom) {
		t.Fatalf("other error: %v", err)
	}
}

func TestCheckFetchURL(t *testing.T) {
	for _, u := range []string{"https://files.example/cat.png", "http://files.example:8080/a?b=c#frag", "https://[2606:4700::1111]/x"} {
		if _, err := CheckFetchURL(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"", "ftp://a.example/", "//a.example/x", "/x", "http://", "http://:80/", "http://u@a.example/",
		"http://u:p@a.example/", "mailto:a@b.example", "http://a.example:0/", "http://a.example:65536/", "HTTP//a",
		"https://" + strings.Repeat("a", MaxFetchURLLen) + ".example/"} {
		if _, err := CheckFetchURL(u); !errors.Is(err, ErrInvalidURL) {
			t.Errorf("%q accepted", u)
		}
	}
}

func FuzzCheckFetchURL(f *testing.F) {
	for _, s := range []string{"https://a.example/x", "http://127.1/", "http://u:p@h/", "//x", "http://[::1%25eth0]/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := CheckFetchURL(s)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || len(s) > MaxFetchURLLen {
			t.Fatalf("accepted %q", s)
		}
	})
}

type counter struct {
	r io.Reader
	n int
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A failed fetch's error (which is logged) never repeats the URL's query.
func TestFetchErrorDropsTheURL(t *testing.T) {
	err := fetchError(&url.Error{Op: "Get", URL: "https://img.example/a.png?token=q-secret-7f3a", Err: errors.New("connection refused")})
	if strings.Contains(err.Error(), "q-secret-7f3a") || !errors.Is(err, ErrFetchFailed) {
		t.Fatalf("%v", err)
	}
}

package keycloak

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// Browser walks Keycloak's HTML pages the way a person's browser would:
// it keeps cookies, follows redirects inside Keycloak and fills forms. It
// stops at redirects to StopAt (a client's redirect URI), where the code is.
type Browser struct {
	HTTP   *http.Client
	StopAt string
}

// Page is one HTML answer (or the redirect Browser stopped at).
type Page struct {
	Status   int
	URL      *url.URL
	Location string // set when the answer is a redirect to StopAt
	Body     string
}

// NewBrowser returns a Browser with an empty cookie jar.
func (c *Client) NewBrowser(stopAt string) *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	b := &Browser{StopAt: stopAt}
	b.HTTP = &http.Client{
		Timeout: c.HTTP.Timeout,
		Jar:     loopbackJar{jar},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if b.StopAt != "" && strings.HasPrefix(req.URL.String(), b.StopAt) {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	return b
}

// loopbackJar stores and returns cookies as if the loopback http:// origin
// were https:// (what browsers do for localhost): Keycloak marks its cookies
// Secure, and net/http/cookiejar sends Secure cookies over https only.
type loopbackJar struct{ jar http.CookieJar }

func asHTTPS(u *url.URL) *url.URL {
	if u.Scheme != "http" {
		return u
	}
	c := *u
	c.Scheme = "https"
	return &c
}

func (j loopbackJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.jar.SetCookies(asHTTPS(u), cookies)
}

func (j loopbackJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(asHTTPS(u)) }

// Get loads a page.
func (b *Browser) Get(ctx context.Context, u string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

func (b *Browser) do(req *http.Request) (*Page, error) {
	resp, err := b.HTTP.Do(req)
	if err != nil {
		// the URL may carry a code or a session: name the path only
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	p := &Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(body)}
	if resp.StatusCode/100 == 3 {
		p.Location = resp.Header.Get("Location")
	}
	return p, nil
}

var (
	formTag  = regexp.MustCompile(`(?s)<form\b[^>]*>`)
	inputTag = regexp.MustCompile(`(?s)<input\b[^>]*>`)
	attr     = regexp.MustCompile(`(?s)\b([a-zA-Z_-]+)="([^"]*)"`)
)

func attrs(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attr.FindAllStringSubmatch(tag, -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

// Form is one HTML form of a page.
type Form struct {
	Action string     // absolute
	Hidden url.Values // its hidden inputs
}

// Form returns the first form whose id is match, or whose action contains
// match.
func (p *Page) Form(match string) (*Form, error) {
	for _, loc := range formTag.FindAllStringIndex(p.Body, -1) {
		a := attrs(p.Body[loc[0]:loc[1]])
		if a["id"] != match && !strings.Contains(a["action"], match) {
			continue
		}
		action, err := url.Parse(a["action"])
		if err != nil {
			return nil, fmt.Errorf("form %s: bad action", match)
		}
		f := &Form{Action: p.URL.ResolveReference(action).String(), Hidden: url.Values{}}
		body := p.Body[loc[1]:]
		if end := strings.Index(body, "</form>"); end >= 0 {
			body = body[:end]
		}
		for _, in := range inputTag.FindAllString(body, -1) {
			if ia := attrs(in); ia["type"] == "hidden" && ia["name"] != "" {
				f.Hidden.Add(ia["name"], ia["value"])
			}
		}
		return f, nil
	}
	return nil, fmt.Errorf("page %s (status %d) has no form %q", p.URL.Path, p.Status, match)
}

// Submit posts a form of p (see Page.Form): its hidden inputs, overridden
// by fields.
func (b *Browser) Submit(ctx context.Context, p *Page, match string, fields url.Values) (*Page, error) {
	f, err := p.Form(match)
	if err != nil {
		return nil, err
	}
	for k, v := range fields {
		f.Hidden[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.Action, strings.NewReader(f.Hidden.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// Login fills Keycloak's username/password form on p.
func (b *Browser) Login(ctx context.Context, p *Page, username string, password Secret) (*Page, error) {
	return b.Submit(ctx, p, "kc-form-login", url.Values{
		"username":     {username},
		"password":     {string(password)},
		"credentialId": {""},
	})
}

// Package llmapi is edgectl's client of llm-api's HTTP API, reached through
// the gateway (or --api): it resolves the server and the credential — the
// stored login's access token, a bearer token or a DPoP-bound one sent with
// a proof per request, or, for routes that accept them, an API key — sends
// bounded JSON requests and turns error answers into *APIError.
//
// It is not a command and prints nothing: keyscmd, runcmd, usagecmd and
// budgetscmd build on it. No credential ever appears in its errors.
package llmapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/deviceflow"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
)

// MaxBody bounds llm-api's answers.
const MaxBody = 1 << 20

// APIError is an error answer of llm-api ({"error":{"code","message"}}).
type APIError struct {
	Status  int
	Code    string
	Message string
	// Hint, when set, follows the message in parentheses: what to do.
	Hint string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("llm-api answered %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// loginHints are the hints of a request sent with the login: its token was
// refused.
var loginHints = map[string]string{
	"credential_missing": "log in again: edgectl login",
	"token_expired":      "log in again: edgectl login",
	"signature_invalid":  "log in again: edgectl login",
}

// Conn says which llm-api a client talks to and with what, as the flags
// give it.
type Conn struct {
	Server   string // --server ("": EDGEGUARD_SERVER, else the last login)
	API      string // --api: llm-api's public base URL ("": the server)
	APIKey   string // --api-key ("": none)
	Insecure bool   // --insecure-http
	// AcceptAPIKey: the route takes API keys too, in session.Resolve's
	// order (--api-key > EDGEGUARD_API_KEY > the login). Without it the
	// login is used, --api-key is refused (session.ErrAPIKeyNotAccepted, a
	// usage error) and EDGEGUARD_API_KEY is ignored (Client.Ignored).
	AcceptAPIKey bool
}

// Client is llm-api authenticated with one credential. Refresh may run
// concurrently with a request.
type Client struct {
	se     *session.Env
	server string
	base   string
	hc     *http.Client
	mu     sync.Mutex
	cred   session.Credential // the login's token (and its DPoP key), or an API key
	ua     string
	// Ignored names a credential present but not used (EDGEGUARD_API_KEY
	// for a route that needs the login), "" if none.
	Ignored string
	// Hints are added to APIErrors by code (e.g. forbidden_role → why).
	Hints map[string]string
}

// Open resolves the server and the credential (refreshing the login's
// access token when needed). A refused --api-key and a bad --server or
// --api are returned as they are (usage errors); every other error is an
// outcome.Failure.
func Open(ctx context.Context, o session.Options, c Conn) (*Client, error) {
	se, err := o.Open()
	if err != nil {
		return nil, err
	}
	se.AllowHTTP = c.Insecure
	server, err := se.Server(c.Server)
	if err != nil {
		return nil, err
	}
	base := server
	if c.API != "" {
		u, err := deviceflow.CheckURL(c.API, c.Insecure)
		if err != nil {
			return nil, fmt.Errorf("--api: %w", err)
		}
		if u.RawQuery != "" {
			return nil, errors.New("--api: the URL has a query")
		}
		base = strings.TrimRight(u.String(), "/")
	}
	cred, err := se.Resolve(ctx, server, c.APIKey, session.Accepts{JWT: true, APIKey: c.AcceptAPIKey})
	if errors.Is(err, session.ErrAPIKeyNotAccepted) || (c.APIKey != "" && errors.Is(err, session.ErrBadAPIKey)) {
		return nil, err // usage error: the flag's fault
	}
	if err != nil {
		return nil, outcome.Fail(err)
	}
	return &Client{se: se, server: server, base: base, hc: se.HTTPClient(), cred: cred, ua: se.UserAgent,
		Ignored: cred.Ignored}, nil
}

// Server is the canonical server URL the client's credential belongs to.
func (a *Client) Server() string { return a.server }

// Credential describes the credential without its secret: "the login" or
// "API key <kid> (from --api-key)".
func (a *Client) Credential() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cred.Kind != session.KindAPIKey {
		if a.cred.DPoP != nil {
			return "the login (DPoP-bound)"
		}
		return "the login"
	}
	src := session.EnvAPIKey
	if a.cred.Source == "flag" {
		src = "--api-key"
	}
	return fmt.Sprintf("API key %s (from %s)", a.cred.KID, src)
}

// Refresh takes the login's current access token, refreshing (and storing)
// it when it expires within session.MinValidity. Long-running callers call it
// before a request and now and then in between, which also keeps the
// session from ending idle (Keycloak's SSO session idle timeout). With an
// API key there is nothing to refresh.
func (a *Client) Refresh(ctx context.Context) error {
	a.mu.Lock()
	key := a.cred.Kind == session.KindAPIKey
	a.mu.Unlock()
	if key {
		return nil
	}
	cred, err := a.se.Resolve(ctx, a.server, "", session.Accepts{JWT: true})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.cred = cred
	a.mu.Unlock()
	return nil
}

func (a *Client) now() time.Time {
	if a.se != nil && a.se.Now != nil {
		return a.se.Now()
	}
	return time.Now()
}

// Do sends a request to path p (escaped, with its query if any) with in as
// its JSON body (nil: none). A 2xx answer is decoded into out (when not nil)
// and returned as read; anything else is an *APIError. A DPoP-bound
// session's request that the edge answers with use_dpop_nonce is sent once
// more with the nonce.
func (a *Client) Do(ctx context.Context, method, p string, in, out any) ([]byte, error) {
	var payload []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	a.mu.Lock()
	cred := a.cred
	a.mu.Unlock()
	nonce := ""
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if in != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, a.base+p, body)
		if err != nil {
			return nil, fmt.Errorf("bad URL: %w", err)
		}
		if err := cred.Authorize(req, nonce, a.now()); err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if a.ua != "" {
			req.Header.Set("User-Agent", a.ua)
		}
		resp, err := a.hc.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("%s %s%s: %w", method, req.URL.Host, req.URL.Path, err)
		}
		if n, ok := session.NonceRetry(resp.StatusCode, resp.Header); ok && cred.DPoP != nil && attempt == 0 {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody))
			resp.Body.Close()
			nonce = n
			continue
		}
		b, err := read(resp, method, req, out)
		var ae *APIError
		if errors.As(err, &ae) {
			ae.Hint = a.Hints[ae.Code]
			if cred.Kind != session.KindAPIKey && ae.Hint == "" {
				ae.Hint = loginHints[ae.Code]
			}
		}
		return b, err
	}
}

// read reads an answer of Do.
func read(resp *http.Response, method string, req *http.Request, out any) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, req.URL.Path, err)
	}
	if len(b) > MaxBody {
		return nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, req.URL.Path, MaxBody)
	}
	if resp.StatusCode/100 != 2 {
		return nil, apiError(resp.StatusCode, b)
	}
	if out == nil {
		return b, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%s %s: malformed answer: field %s has the wrong type", method, req.URL.Path, te.Field)
		}
		return nil, fmt.Errorf("%s %s: malformed answer (status %d, not the expected JSON)", method, req.URL.Path, resp.StatusCode)
	}
	return b, nil
}

func apiError(status int, b []byte) error {
	var e struct {
		Error struct {
			Code    any `json:"code"`
			Message any `json:"message"`
		} `json:"error"`
	}
	ae := &APIError{Status: status}
	if json.Unmarshal(b, &e) == nil {
		if s, ok := e.Error.Code.(string); ok {
			ae.Code = session.Sanitize(s, 64)
		}
		if s, ok := e.Error.Message.(string); ok {
			ae.Message = session.Sanitize(s, 200)
		}
	}
	return ae
}

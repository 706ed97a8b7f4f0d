// Package sandbox is the client of the code sandbox that run_python
// forwards to: SandboxFusion's POST /run_code API (language python) on the
// internal mcp network. It bounds the time of a run and the size of what it
// reads back, follows no redirect and uses no proxy.
//
// It is not a sandbox: isolation is the sandbox service's job, and whether a
// run may happen at all (roles, approvals) is decided before Run is called.
package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors of Run.
var (
	// ErrUnavailable: the sandbox could not be reached or answered with a
	// server error or within no time.
	ErrUnavailable = errors.New("sandbox unavailable")
	// ErrBadResponse: the sandbox answered something that is not a run
	// result.
	ErrBadResponse = errors.New("sandbox answered an unexpected response")
)

// MaxResponseBytes bounds what is read of a sandbox answer.
const MaxResponseBytes = 1 << 20

// Config configures a Client.
type Config struct {
	// URL is the sandbox's base URL (SANDBOX_URL); Run posts to URL/run_code.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token []byte
	// Timeout bounds one run end to end (default 30 s); the sandbox is told
	// to stop the program a second earlier.
	Timeout time.Duration
	// MaxOutputBytes bounds stdout and stderr each in a Result (default
	// 64 KiB); longer output is cut and Truncated set.
	MaxOutputBytes int
	// HTTPClient overrides the default client (tests).
	HTTPClient *http.Client
}

// Client runs code in the sandbox.
type Client struct {
	endpoint string
	auth     string
	timeout  time.Duration
	maxOut   int
	hc       *http.Client
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("sandbox: URL required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = 64 << 10
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 nil, // the sandbox is on the internal network
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:          16,
			IdleConnTimeout:       60 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
		}}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cl := &Client{endpoint: strings.TrimRight(cfg.URL, "/") + "/run_code", timeout: cfg.Timeout, maxOut: cfg.MaxOutputBytes, hc: &c}
	if len(cfg.Token) > 0 {
		cl.auth = "Bearer " + string(cfg.Token)
	}
	return cl, nil
}

// Result is the outcome of one run.
type Result struct {
	// Status is the sandbox's verdict: Success, Failed (the program failed or
	// timed out) or SandboxError.
	Status string `json:"status"`
	// RunStatus is the program's: Finished, Error, TimeLimitExceeded…
	RunStatus     string  `json:"run_status,omitempty"`
	ReturnCode    *int    `json:"return_code,omitempty"`
	Stdout        string  `json:"stdout"`
	Stderr        string  `json:"stderr"`
	ExecutionTime float64 `json:"execution_time_seconds,omitempty"`
	Truncated     bool    `json:"truncated,omitempty"`
}

type runRequest struct {
	Code       string  `json:"code"`
	Language   string  `json:"language"`
	RunTimeout float64 `json:"run_timeout"`
}

type runResponse struct {
	Status    string `json:"status"`
	Message   string `json:"message"`
	RunResult *struct {
		Status        string   `json:"status"`
		ExecutionTime *float64 `json:"execution_time"`
		ReturnCode    *int     `json:"return_code"`
		Stdout        *string  `json:"stdout"`
		Stderr        *string  `json:"stderr"`
	} `json:"run_result"`
}

// Run executes code (python) and returns the sandbox's result. Transport
// failures are ErrUnavailable, malformed answers ErrBadResponse; a program
// that fails is a Result, not an error.
func (c *Client) Run(ctx context.Context, code string) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	runTimeout := c.timeout.Seconds() - 1
	if runTimeout < 1 {
		runTimeout = c.timeout.Seconds()
	}
	body, err := json.Marshal(runRequest{Code: code, Language: "python", RunTimeout: runTimeout})
	if err != nil {
		return nil, fmt.Errorf("sandbox: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %w", ErrUnavailable, err)
	}
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("%w: status %d", ErrUnavailable, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: status %d", ErrBadResponse, resp.StatusCode)
	}
	if len(raw) > MaxResponseBytes {
		return nil, fmt.Errorf("%w: answer over %d bytes", ErrBadResponse, MaxResponseBytes)
	}
	return c.decode(raw)
}

func (c *Client) decode(raw []byte) (*Result, error) {
	var rr runResponse
	if err := json.Unmarshal(raw, &rr); err != nil {
		return nil, fmt.Errorf("%w: not JSON", ErrBadResponse)
	}
	if rr.Status == "" {
		return nil, fmt.Errorf("%w: no status", ErrBadResponse)
	}
	res := &Result{Status: clip(rr.Status, 64)}
	if rr.RunResult != nil {
		res.RunStatus = clip(rr.RunResult.Status, 64)
		res.ReturnCode = rr.RunResult.ReturnCode
		if rr.RunResult.ExecutionTime != nil {
			res.ExecutionTime = *rr.RunResult.ExecutionTime
		}
		var cut1, cut2 bool
		if rr.RunResult.Stdout != nil {
			res.Stdout, cut1 = truncate(*rr.RunResult.Stdout, c.maxOut)
		}
		if rr.RunResult.Stderr != nil {
			res.Stderr, cut2 = truncate(*rr.RunResult.Stderr, c.maxOut)
		}
		res.Truncated = cut1 || cut2
	}
	if res.Status == "SandboxError" && res.Stderr == "" {
		res.Stderr, _ = truncate(rr.Message, c.maxOut)
	}
	return res, nil
}

func clip(s string, n int) string {
	s, _ = truncate(s, n)
	return s
}

// truncate cuts s to at most n bytes on a rune boundary and makes it valid
// UTF-8.
func truncate(s string, n int) (string, bool) {
	cut := false
	if len(s) > n {
		s, cut = s[:n], true
		for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ { // a rune cut in half
			if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
				break
			}
			s = s[:len(s)-1]
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD"), cut
}

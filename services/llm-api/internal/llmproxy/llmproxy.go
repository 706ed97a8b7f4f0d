// Package llmproxy forwards llm-api's OpenAI-compatible endpoints
// (GET /v1/models, POST /v1/chat/completions, /v1/completions,
// /v1/embeddings) to an OpenAI-compatible model server (vLLM).
//
// What crosses to the upstream is an allowlist: the method, the fixed path,
// the request body (checked to be one JSON object, at most MaxBodyBytes, then
// forwarded byte for byte), Content-Type, Accept and X-Request-ID — plus the
// service's own upstream key as a bearer token. The client's credentials
// (Authorization, X-API-Key, X-Edge-Identity, cookies) and every other header
// and the query string are dropped. Answers: 2xx stream through (flushed at
// once, so server-sent events arrive as the model writes them); an OpenAI
// style 4xx (a JSON body of at most 64 KiB, not 401/403/407) passes through
// unchanged; anything else becomes a JSON error of our own —
// upstream_unavailable (502, cannot connect), upstream_timeout (504),
// upstream_error (502) — and the upstream's body is never echoed.
//
// It does not authenticate (the router puts pkg/edgehttp in front), limit
// rates (the edge does) or look inside the body beyond its JSON shape.
package llmproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/tracing"
	"github.com/rs/zerolog"
)

// Defaults.
const (
	DefaultTimeout       = 120 * time.Second
	DefaultMaxBodyBytes  = 10 << 20
	DefaultDialTimeout   = 5 * time.Second
	maxPassthroughErrLen = 64 << 10
)

// Error codes of the JSON answers.
const (
	CodeUpstreamError       = "upstream_error"
	CodeUpstreamTimeout     = "upstream_timeout"
	CodeUpstreamUnavailable = "upstream_unavailable"
	CodeBodyTooLarge        = "body_too_large"
	CodeInvalidBody         = "invalid_request_body"
)

// ErrInvalidConfig wraps every configuration error of New.
var ErrInvalidConfig = errors.New("invalid llmproxy config")

// errUpstreamStatus marks an upstream answer we replace (5xx, 3xx, 401/403/407,
// a 4xx that is not a small JSON body).
var errUpstreamStatus = errors.New("upstream answered with an unusable status")

// Config configures a Proxy.
type Config struct {
	// UpstreamURL is the upstream's OpenAI base URL including /v1, e.g.
	// http://vllm:8000/v1; "/v1/chat/completions" is sent to
	// UpstreamURL + "/chat/completions". Required.
	UpstreamURL string
	// APIKey is sent as "Authorization: Bearer <APIKey>"; empty: none.
	APIKey []byte
	// Timeout bounds a whole exchange, streaming included (default 120 s).
	Timeout time.Duration
	// HeaderTimeout bounds the wait for the upstream's response headers
	// (default Timeout). A non-streaming answer's headers come when the
	// generation ends, so this also bounds non-streaming generation.
	HeaderTimeout time.Duration
	// MaxBodyBytes is the largest request body (default 10 MiB; more: 413).
	MaxBodyBytes int64
	// Transport overrides the upstream transport (tests).
	Transport http.RoundTripper
	Logger    zerolog.Logger
}

// Proxy is the upstream forwarder; an http.Handler for the four routes.
type Proxy struct {
	cfg   Config
	base  *url.URL
	auth  string
	rp    *httputil.ReverseProxy
	trans *http.Transport
}

var _ http.Handler = (*Proxy)(nil)

// New validates cfg, applies defaults and builds the transport.
func New(cfg Config) (*Proxy, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HeaderTimeout == 0 || cfg.HeaderTimeout > cfg.Timeout {
		cfg.HeaderTimeout = cfg.Timeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	u, err := url.Parse(cfg.UpstreamURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: upstream URL must be an absolute http(s) URL without credentials, query or fragment", ErrInvalidConfig)
	}
	if cfg.Timeout < 0 || cfg.HeaderTimeout < 0 || cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("%w: negative timeout or body limit", ErrInvalidConfig)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	p := &Proxy{cfg: cfg, base: u}
	if len(cfg.APIKey) > 0 {
		p.auth = "Bearer " + string(cfg.APIKey)
	}
	rt := cfg.Transport
	if rt == nil {
		p.trans = &http.Transport{
			Proxy:                 nil, // the upstream is on the private network; no HTTP_PROXY detour
			DialContext:           (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   DefaultDialTimeout,
			ResponseHeaderTimeout: cfg.HeaderTimeout,
			DisableCompression:    true, // no gzip buffering in front of event streams
		}
		rt = p.trans
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: p.rewrite,
		// a client span per upstream call, carrying the trace on in
		// traceparent (the incoming one is not in forwardedHeaders)
		Transport:      tracing.Transport(rt),
		FlushInterval:  -1,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		// body-copy errors (a stream cut by the timeout): to our logger
		ErrorLog: stdlog.New(cfg.Logger, "llmproxy: ", 0),
	}
	return p, nil
}

// Close releases idle upstream connections.
func (p *Proxy) Close() {
	if p.trans != nil {
		p.trans.CloseIdleConnections()
	}
}

// ServeHTTP forwards r (one of the four routes: the router decides which
// paths reach it).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := zerolog.Ctx(r.Context())
	var body []byte
	if r.Method != http.MethodGet {
		if r.ContentLength > p.cfg.MaxBodyBytes {
			edgehttp.WriteError(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body too large")
			return
		}
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				edgehttp.WriteError(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body too large")
				return
			}
			edgehttp.WriteError(w, http.StatusBadRequest, CodeInvalidBody, "request body could not be read")
			return
		}
		if !IsJSONObject(body) {
			edgehttp.WriteError(w, http.StatusBadRequest, CodeInvalidBody, "request body must be one JSON object")
			return
		}
	}
	// The exchange may outlive the listener's write timeout (streams):
	// extend this response's deadline to the upstream timeout plus slack.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(p.cfg.Timeout + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	defer cancel()
	out := r.WithContext(ctx)
	out.Header = r.Header.Clone()
	id := w.Header().Get(edgehttp.HeaderRequestID)
	if id == "" {
		id = edgehttp.RequestID(r)
	}
	out.Header.Set(edgehttp.HeaderRequestID, id)
	out.Body = http.NoBody
	out.ContentLength = 0
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	log.Debug().Str("upstream_path", p.path(r.URL.Path)).Int("body_bytes", len(body)).Msg("forwarding to upstream")
	p.rp.ServeHTTP(w, out)
}

// Observer sees the upstream's answer of one exchange (see WithObserver):
// llm-api's metering reads the usage from it.
type Observer interface {
	// Answered is called with a 2xx answer before it is copied to the
	// client; it may replace res.Body (it must keep the bytes the client
	// gets as the model server sent them, or rewrite them deliberately).
	Answered(res *http.Response)
	// Refused is called with an upstream 4xx that passes through (the
	// model server refused the request: nothing was generated).
	Refused(status int)
	// Failed is called when llm-api answers with an error of its own
	// (code: CodeUpstreamUnavailable — the model server could not be
	// reached —, CodeUpstreamTimeout or CodeUpstreamError).
	Failed(status int, code string)
}

type observerKey struct{}

// WithObserver returns ctx carrying o for the exchange of a request
// served with that context.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

func observer(ctx context.Context) Observer {
	o, _ := ctx.Value(observerKey{}).(Observer)
	return o
}

// IsJSONObject reports whether b is one valid JSON value that is an object.
func IsJSONObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b)
}

func (p *Proxy) path(in string) string {
	return p.base.Path + strings.TrimPrefix(in, "/v1")
}

// forwardedHeaders are the only request headers the upstream sees (plus the
// service's Authorization).
var forwardedHeaders = []string{"Content-Type", "Accept", edgehttp.HeaderRequestID}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	in := pr.In
	h := make(http.Header, len(forwardedHeaders)+1)
	for _, k := range forwardedHeaders {
		if v := in.Header.Get(k); v != "" && !strings.ContainsAny(v, "\r\n") {
			h.Set(k, v)
		}
	}
	if in.Method != http.MethodGet {
		h.Set("Content-Type", "application/json")
	}
	if p.auth != "" {
		h.Set("Authorization", p.auth)
	}
	h.Set("User-Agent", "edgeguard-llm-api")
	pr.Out.Header = h
	pr.Out.URL = &url.URL{Scheme: p.base.Scheme, Host: p.base.Host, Path: p.path(in.URL.Path)}
	pr.Out.Host = p.base.Host
}

// responseHeaders are the upstream response headers a client sees.
var responseHeaders = []string{"Content-Type", "Content-Length", "Cache-Control", "Retry-After"}

func (p *Proxy) modifyResponse(res *http.Response) error {
	h := make(http.Header, len(responseHeaders))
	for _, k := range responseHeaders {
		if v := res.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	res.Header = h
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		if ct := h.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
			res.Header.Set("X-Accel-Buffering", "no")
		}
		if o := observer(res.Request.Context()); o != nil {
			o.Answered(res)
		}
		return nil
	case res.StatusCode >= 400 && res.StatusCode < 500 &&
		res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden &&
		res.StatusCode != http.StatusProxyAuthRequired:
		b, err := io.ReadAll(io.LimitReader(res.Body, maxPassthroughErrLen+1))
		_ = res.Body.Close()
		if err != nil || len(b) > maxPassthroughErrLen || !IsJSONObject(b) {
			return fmt.Errorf("%w: %d with a body that is not a small JSON object", errUpstreamStatus, res.StatusCode)
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
		res.ContentLength = int64(len(b))
		res.Header.Set("Content-Type", "application/json")
		res.Header.Set("Content-Length", fmt.Sprint(len(b)))
		if o := observer(res.Request.Context()); o != nil {
			o.Refused(res.StatusCode)
		}
		return nil
	default:
		_ = res.Body.Close()
		return fmt.Errorf("%w: %d", errUpstreamStatus, res.StatusCode)
	}
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	log := zerolog.Ctx(r.Context())
	status, code, msg := http.StatusBadGateway, CodeUpstreamError, "the model server failed"
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, errUpstreamStatus):
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		status, code, msg = http.StatusGatewayTimeout, CodeUpstreamTimeout, "the model server did not answer in time"
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// the client went away; nobody reads this answer
		log.Debug().Msg("client cancelled the upstream request")
		if o := observer(r.Context()); o != nil {
			o.Failed(499, "client_closed")
		}
		w.WriteHeader(499)
		return
	case errors.As(err, &oe) && oe.Op == "dial":
		status, code, msg = http.StatusBadGateway, CodeUpstreamUnavailable, "the model server is unavailable"
	}
	// err never carries the upstream's body or our key (url.Error prints
	// the method and URL, and the URL has no credentials).
	log.Warn().Err(err).Str("reason", code).Msg("upstream request failed")
	if o := observer(r.Context()); o != nil {
		o.Failed(status, code)
	}
	edgehttp.WriteError(w, status, code, msg)
}

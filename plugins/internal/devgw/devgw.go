// Package devgw is the dev gateway: a net/http reverse proxy that serves
// Kong's DB-less kong/kong.yml — its services, routes and plugins — by
// running the same edgeguard plugin handlers Kong runs, through the plugin
// host port (exchange.Exchange) implemented over net/http. It is the
// embedded default for local runs and end-to-end tests, so that the dev
// stack behaves like production where it matters to clients: route matching,
// the plugin chain in Kong's priority order, Kong's cors and
// request-size-limiting, identity only in the request's memory.
//
// It is not a production gateway (production is Kong): it routes by prefix
// paths and methods only, runs no Kong plugin other than those two, keeps
// no per-worker state, and trusts its operator's flags.
package devgw

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

// Error codes of the answers the gateway itself gives.
const (
	CodeNoRoute             = "no_route"
	CodeUpstreamUnavailable = "upstream_unavailable"
)

// DefaultMaxBodyBytes mirrors kong.conf's nginx_http_client_max_body_size
// (21m): the cap on every request body, before any plugin.
const DefaultMaxBodyBytes = 21 << 20

// Kong's service timeout defaults (milliseconds).
const defaultTimeoutMS = 60000

// ErrConfig is wrapped by every error of New: kong.yml uses something the
// dev gateway cannot serve, or an option is wrong.
var ErrConfig = errors.New("dev gateway cannot serve this configuration")

// Options configure a Gateway.
type Options struct {
	// Config is the parsed kong.yml (kongconf.Load).
	Config *kongconf.Config
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (pkg/clientip); none by default: the client is the TCP peer.
	TrustedProxies []netip.Prefix
	// Upstreams override service URLs by service name (scheme and host;
	// the path too when the override has one). An unknown name is an error.
	Upstreams map[string]string
	// Rewrites apply to every string of the plugin configs and to the
	// service URLs (before Upstreams).
	Rewrites []Rewrite
	// MaxBodyBytes caps every request body (413); 0 means no cap. The
	// command's default is DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives the access log and the gateway's own messages (nil:
	// none). The plugins log to stderr, as under Kong.
	Logger *zerolog.Logger
}

type service struct {
	name      string
	url       *url.URL
	path      string // escaped; "" for none
	transport *http.Transport
}

type route struct {
	name          string
	service       *service
	paths         []string
	methods       []string
	hosts         []string // lower case; "" port: any port
	strip         bool
	preserveHost  bool
	chain         []plugin
	pluginsByName []string
}

// Gateway serves kong.yml. It is safe for concurrent use.
type Gateway struct {
	routes      []*route
	services    []*service
	table       *table
	proxy       *httputil.ReverseProxy
	trusted     []netip.Prefix
	maxBody     int64
	log         zerolog.Logger
	notEmulated []string
}

var _ http.Handler = (*Gateway)(nil)

// New builds the gateway of o.Config: services with their effective URLs,
// routes with their plugin chains (configs decoded as Kong hands them to the
// plugins; each instance provisioned once, on first use or Warm). Plugins it
// does not run are logged once, as not emulated.
func New(o Options) (*Gateway, error) {
	if o.Config == nil {
		return nil, fmt.Errorf("%w: no kong.yml", ErrConfig)
	}
	g := &Gateway{trusted: o.TrustedProxies, maxBody: o.MaxBodyBytes, log: zerolog.Nop()}
	if o.Logger != nil {
		g.log = *o.Logger
	}
	c := rewriteConfig(o.Config, o.Rewrites)

	byName := map[string]*service{}
	for i := range c.Services {
		s, err := newService(&c.Services[i], o)
		if err != nil {
			return nil, err
		}
		byName[s.name] = s
		g.services = append(g.services, s)
	}
	for name := range o.Upstreams {
		if byName[name] == nil {
			return nil, fmt.Errorf("%w: --upstream %s: kong.yml has no such service", ErrConfig, name)
		}
	}

	unknown := map[string]bool{}
	addRoute := func(s *kongconf.Service, r *kongconf.Route) error {
		if s.Enabled != nil && !*s.Enabled {
			return nil // Kong does not route to a disabled service
		}
		rt, err := g.newRoute(c, byName[s.Name], r, unknown)
		if err != nil {
			return fmt.Errorf("%w: route %q: %w", ErrConfig, r.Name, err)
		}
		g.routes = append(g.routes, rt)
		return nil
	}
	for i := range c.Services {
		s := &c.Services[i]
		for j := range s.Routes {
			if err := addRoute(s, &s.Routes[j]); err != nil {
				return nil, err
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		for j := range c.Services {
			if c.Services[j].Name == string(r.Service) {
				if err := addRoute(&c.Services[j], r); err != nil {
					return nil, err
				}
			}
		}
	}
	t, err := newTable(g.routes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	g.table = t
	for name := range unknown {
		g.notEmulated = append(g.notEmulated, name)
	}
	slices.Sort(g.notEmulated)
	if len(g.notEmulated) > 0 {
		g.log.Warn().Strs("plugins", g.notEmulated).
			Msg("kong.yml plugins not emulated by the dev gateway: requests pass as if they were absent")
	}

	g.proxy = &httputil.ReverseProxy{
		Rewrite:   g.rewrite,
		Transport: roundTripper(g.roundTrip),
		// 0: ReverseProxy itself flushes every write of a text/event-stream or
		// unknown-length (streamed) answer; answers of known length are not
		// flushed per write (a syscall each, ~12 % of the gateway under load).
		FlushInterval:  0,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       log.New(logWriter{g.log}, "", 0),
		BufferPool:     copyBuffers{},
	}
	return g, nil
}

func newService(s *kongconf.Service, o Options) (*service, error) {
	raw := s.URL
	if raw == "" {
		proto := s.Protocol
		if proto == "" {
			proto = "http"
		}
		port := s.Port
		if port == 0 {
			port = 80
			if proto == "https" {
				port = 443
			}
		}
		raw = proto + "://" + net.JoinHostPort(s.Host, strconv.Itoa(port)) + s.Path
	}
	raw = rewriteString(raw, o.Rewrites)
	u, err := parseServiceURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: service %q: %v", ErrConfig, s.Name, err)
	}
	if over, ok := o.Upstreams[s.Name]; ok {
		ou, err := parseServiceURL(over)
		if err != nil {
			return nil, fmt.Errorf("%w: --upstream %s: %v", ErrConfig, s.Name, err)
		}
		u.Scheme, u.Host = ou.Scheme, ou.Host
		if ou.Path != "" {
			u.Path, u.RawPath = ou.Path, ou.RawPath
		}
	}
	connect := ms(s.ConnectTimeout)
	return &service{
		name: s.Name,
		url:  u,
		path: u.EscapedPath(),
		transport: &http.Transport{
			Proxy:                 nil, // never an environment proxy: upstreams are local
			DialContext:           (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   connect,
			ResponseHeaderTimeout: ms(s.ReadTimeout),
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true, // pass bodies through as the upstream sent them
		},
	}, nil
}

func ms(v int) time.Duration {
	if v <= 0 {
		v = defaultTimeoutMS
	}
	return time.Duration(v) * time.Millisecond
}

func (g *Gateway) newRoute(c *kongconf.Config, s *service, r *kongconf.Route, unknown map[string]bool) (*route, error) {
	switch {
	case slices.ContainsFunc(r.Hosts, func(h string) bool { return h == "" || strings.Contains(h, "*") }):
		return nil, fmt.Errorf("hosts %q: wildcard hosts are not supported by the dev gateway", r.Hosts)
	case len(r.Headers) > 0:
		return nil, errors.New("headers are not supported by the dev gateway (paths, methods and plain hosts only)")
	case len(r.Protocols) > 0 && !slices.Contains(r.Protocols, "http"):
		return nil, fmt.Errorf("protocols %q: the dev gateway serves plain http only", r.Protocols)
	}
	rt := &route{
		name:         r.Name,
		service:      s,
		paths:        r.Paths,
		methods:      r.Methods,
		hosts:        lowerAll(r.Hosts),
		strip:        r.StripPathOrDefault(),
		preserveHost: r.PreserveHost,
	}
	configs, skipped := routePlugins(c, s.name, r.Name)
	for _, n := range skipped {
		unknown[n] = true
	}
	chain, err := buildChain(configs, g.log.With().Str("route", r.Name).Logger())
	if err != nil {
		return nil, err
	}
	rt.chain = chain
	for _, p := range chain {
		rt.pluginsByName = append(rt.pluginsByName, p.name)
	}
	return rt, nil
}

// NotEmulated returns the names of the kong.yml plugins the gateway does not
// run, sorted.
func (g *Gateway) NotEmulated() []string { return slices.Clone(g.notEmulated) }

// Services returns each service's effective upstream URL (user info
// redacted), by name.
func (g *Gateway) Services() map[string]string {
	out := make(map[string]string, len(g.services))
	for _, s := range g.services {
		out[s.name] = s.url.Redacted()
	}
	return out
}

// Chain returns the plugin names of a route in the order they run (nil for
// an unknown route).
func (g *Gateway) Chain(routeName string) []string {
	for _, r := range g.routes {
		if r.name == routeName {
			return slices.Clone(r.pluginsByName)
		}
	}
	return nil
}

// Warm provisions every edgeguard plugin instance now rather than on its
// first request, so that a misconfiguration (a missing secret file, an
// invalid option) is logged at start-up. A misconfigured instance still
// answers its requests 500 edge_misconfigured, as under Kong. It returns
// how many instances failed.
func (g *Gateway) Warm() int {
	failed := 0
	for _, r := range g.routes {
		for _, p := range r.chain {
			if s, ok := p.step.(*edgeStep); ok {
				if _, err := s.handler(); err != nil {
					failed++
				}
			}
		}
	}
	return failed
}

// Close releases the upstream connections.
func (g *Gateway) Close() {
	for _, s := range g.services {
		s.transport.CloseIdleConnections()
	}
}

// reqState is a request's state between ServeHTTP and the proxy's hooks,
// carried in the request context.
type reqState struct {
	ex     *Exchange
	route  *route
	prefix string
}

type stateKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// ServeHTTP routes a request, runs its route's plugins and proxies it.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	path, ok := normalizePath(r.URL.EscapedPath())
	var st *reqState
	defer func() { g.accessLog(r, rec, st, path, ok, start) }()

	if g.maxBody > 0 {
		if r.ContentLength > g.maxBody {
			g.gatewayError(rec, r, nil, http.StatusRequestEntityTooLarge, kongMessage(msgPayloadTooLarge))
			return
		}
		if r.ContentLength < 0 { // chunked: counted as it is read
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
		}
	}
	var rt *route
	var prefix string
	if ok {
		rt, prefix = g.table.lookup(r.Method, r.Host, path)
	}
	if rt == nil {
		g.gatewayError(rec, r, nil, http.StatusNotFound, exchange.ErrorBody(CodeNoRoute, "no Route matched with those values"))
		return
	}
	st = &reqState{route: rt, prefix: prefix}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	st.ex = newExchange(r, path, g.trusted)
	for _, p := range rt.chain {
		p.step.run(st.ex)
		if st.ex.Exited() {
			st.ex.writeExit(rec)
			return
		}
	}
	g.proxy.ServeHTTP(rec, r)
}

// msgPayloadTooLarge is Kong's answer to a body over nginx's
// client_max_body_size.
const msgPayloadTooLarge = "Payload too large"

// gatewayError answers an error of the gateway itself (a JSON body), with
// the response headers the plugins buffered (ex may be nil) and an
// X-Request-ID when no plugin set one.
func (g *Gateway) gatewayError(w http.ResponseWriter, r *http.Request, ex *Exchange, status int, body []byte) {
	h := w.Header()
	if ex != nil {
		ex.applyResponse(h)
	}
	if h.Get(requestid.Header) == "" {
		h.Set(requestid.Header, requestid.Or(r.Header.Get(requestid.Header)))
	}
	h.Set("Content-Type", exchange.ContentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.In.Context())
	svc := st.route.service
	up := upstreamPath(svc.path, st.prefix, st.ex.path, st.route.strip)
	out := pr.Out
	out.URL.Scheme, out.URL.Host, out.URL.User = svc.url.Scheme, svc.url.Host, nil
	out.URL.RawPath = up
	out.URL.Path, _ = url.PathUnescape(up) // up is normalized: its escapes are valid
	out.URL.RawQuery = pr.In.URL.RawQuery
	if st.route.preserveHost {
		out.Host = pr.In.Host
	} else {
		out.Host = ""
	}

	// X-Forwarded-*: as Kong, the peer is appended to the client's
	// X-Forwarded-For — unless the global client-ip plugin runs, which makes
	// it the one client address (Kong then sends $remote_addr alone); the
	// client's Proto/Host are believed only from a trusted proxy.
	if xff := pr.In.Header["X-Forwarded-For"]; len(xff) > 0 {
		out.Header["X-Forwarded-For"] = slices.Clone(xff)
	}
	pr.SetXForwarded()
	if st.ex.oneForwardedFor {
		out.Header.Del("X-Forwarded-For")
		if ip := st.ex.ClientIP(); ip != "" {
			out.Header["X-Forwarded-For"] = []string{ip}
		}
	}
	if g.peerTrusted(pr.In.RemoteAddr) {
		for _, k := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
			if v := pr.In.Header.Get(k); v != "" {
				out.Header.Set(k, v)
			}
		}
	}
	if ip := st.ex.ClientIP(); ip != "" {
		out.Header.Set("X-Real-IP", ip)
	}
	st.ex.applyUpstream(out.Header)
}

func (g *Gateway) peerTrusted(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range g.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (g *Gateway) roundTrip(r *http.Request) (*http.Response, error) {
	return stateOf(r.Context()).route.service.transport.RoundTrip(r)
}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	if st := stateOf(resp.Request.Context()); st != nil {
		st.ex.applyResponse(resp.Header)
	}
	return nil
}

// proxyError answers an upstream that cannot be reached (unknown host,
// refused, timed out) 502 upstream_unavailable, and a body over the cap 413.
// The log names the service, never the request URL (its query may carry
// credentials).
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		g.gatewayError(w, r, st.ex, http.StatusRequestEntityTooLarge, kongMessage(msgPayloadTooLarge))
		return
	}
	g.gatewayError(w, r, st.ex, http.StatusBadGateway,
		exchange.ErrorBody(CodeUpstreamUnavailable, "the upstream service is unavailable"))
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	g.log.Warn().Str("request_id", requestID(r, st, w.Header())).Str("route", st.route.name).
		Str("service", st.route.service.name).Str("upstream", st.route.service.url.Host).
		Str("error", err.Error()).Msg("upstream unavailable")
}

// requestID is the request id of a log line: header-guard's, else the one
// the gateway answered with (in written), else the client's if valid, else
// a new one.
func requestID(r *http.Request, st *reqState, written http.Header) string {
	if st != nil {
		if id := st.ex.responseHeader(requestid.Header); id != "" {
			return id
		}
	}
	if id := written.Get(requestid.Header); id != "" {
		return id
	}
	return requestid.Or(r.Header.Get(requestid.Header))
}

func (g *Gateway) accessLog(r *http.Request, rec *recorder, st *reqState, path string, ok bool, start time.Time) {
	rid := requestID(r, st, rec.Header())
	if !ok {
		path = truncate(r.URL.EscapedPath(), 256)
	}
	ev := g.log.Info().Str("request_id", rid).Str("method", r.Method).Str("path", path)
	if st != nil {
		ev = ev.Str("route", st.route.name).Str("service", st.route.service.name)
		if ip := st.ex.ClientIP(); ip != "" {
			ev = ev.Str("client_ip", ip)
		}
		if c := st.ex.Consumer(); c.ID != "" {
			ev = ev.Str("consumer_id", c.ID)
		}
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	ev.Int("status", status).Int64("bytes", rec.bytes).
		Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).Msg("request")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// recorder notes the status and size of a response for the access log. It
// unwraps to the server's ResponseWriter, so http.ResponseController (the
// reverse proxy's flushes) reaches the connection.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// copyBuffers lends the reverse proxy its 32 KiB body-copy buffers (it
// would allocate one per request).
type copyBuffers struct{}

var _ httputil.BufferPool = copyBuffers{}

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *bufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { bufferPool.Put(&b) }

// logWriter sends net/http's and the reverse proxy's own messages to the
// gateway's logger.
type logWriter struct{ log zerolog.Logger }

func (l logWriter) Write(p []byte) (int, error) {
	l.log.Warn().Str("error", string(p)).Msg("http")
	return len(p), nil
}

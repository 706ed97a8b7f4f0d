// Package headerguard is the logic of the header-guard plugin, the edge's
// first plugin on every route (priority 1510): it refuses requests with too
// many or too large headers (431), removes client copies of every identity
// header the edge owns (and every header the client names in Connection,
// and configured extra headers) before anything upstream can trust them,
// and gives every request a well-formed X-Request-ID, upstream and on the
// response.
//
// It runs in the access phase only: a Kong Response handler would make Kong
// buffer whole upstream bodies and break streaming (SSE). It is written
// against exchange.Exchange, so the Kong plugin (Config.Access), an
// all-in-one plugin (Config.Handle) and tests run the same code.
// It does not authenticate anyone.
package headerguard

import (
	"errors"
	"fmt"

	"github.com/Kong/go-pdk"

	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongadapter"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
)

// Name is the plugin's Kong name.
const Name = "header-guard"

// Defaults and bounds of the configuration.
const (
	DefaultMaxHeaders     = 100
	MaxMaxHeaders         = kongadapter.MaxMaxHeaders // Kong's get_headers refuses more than 1000
	DefaultMaxHeaderBytes = 32 << 10
	MinMaxHeaderBytes     = 1 << 10
	MaxMaxHeaderBytes     = 1 << 20
)

// HeaderRequestID is the request id header header-guard owns.
const HeaderRequestID = "X-Request-ID"

// Error codes of the 431 answers.
const (
	CodeTooManyHeaders   = "too_many_headers"
	CodeHeadersTooLarge  = "headers_too_large"
	maxStripHeaderLength = 256
)

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid header-guard configuration")

// Config is header-guard's Kong configuration, decoded by go-pdk from the
// JSON Kong sends (every field present, unset ones null). Zero values mean
// "default". Kong serves many requests on one Config concurrently: the
// validated form is built once, on the first request.
type Config struct {
	// MaxHeaders is the most header lines a request may carry (default 100,
	// 1..999); more is answered 431 too_many_headers.
	MaxHeaders int `json:"max_headers"`
	// MaxHeaderBytes bounds the sum over header lines of
	// len(name)+len(value)+4 (default 32768, 1024..1048576); more is
	// answered 431 headers_too_large.
	MaxHeaderBytes int `json:"max_header_bytes"`
	// StripHeaders are extra client headers to remove before the request
	// goes upstream, matched in any case and with '_' for '-'.
	StripHeaders []string `json:"strip_headers"`

	rt pluginrt.Instance[*Guard]
}

// New returns an empty Config, as go-pdk's constructor wants it.
func New() *Config { return &Config{} }

// UnmarshalJSON decodes Kong's config JSON through kongjson: a null field
// and a record whose fields are all null (how Kong sends an unset record)
// are unset, as if absent; unknown members such as "__seq__" are ignored.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config // no methods: no recursion
	return kongjson.Unmarshal(data, (*plain)(c))
}

// Provision validates c and returns the guard it describes. It has no side
// effects; Handle and Access call it once per Config.
func (c *Config) Provision() (*Guard, error) {
	g := &Guard{
		maxHeaders: c.MaxHeaders,
		maxBytes:   c.MaxHeaderBytes,
		newID:      requestid.New,
	}
	if g.maxHeaders == 0 {
		g.maxHeaders = DefaultMaxHeaders
	}
	if g.maxHeaders < 1 || g.maxHeaders > MaxMaxHeaders {
		return nil, fmt.Errorf("%w: max_headers %d is outside 1..%d", ErrInvalidConfig, c.MaxHeaders, MaxMaxHeaders)
	}
	if g.maxBytes == 0 {
		g.maxBytes = DefaultMaxHeaderBytes
	}
	if g.maxBytes < MinMaxHeaderBytes || g.maxBytes > MaxMaxHeaderBytes {
		return nil, fmt.Errorf("%w: max_header_bytes %d is outside %d..%d",
			ErrInvalidConfig, c.MaxHeaderBytes, MinMaxHeaderBytes, MaxMaxHeaderBytes)
	}
	for i, name := range c.StripHeaders {
		if !headername.IsToken(name) || len(name) > maxStripHeaderLength {
			return nil, fmt.Errorf("%w: strip_headers[%d] is not a header name", ErrInvalidConfig, i)
		}
		canon := headername.Canonical(name)
		if canon == "host" {
			return nil, fmt.Errorf("%w: strip_headers[%d]: host cannot be stripped", ErrInvalidConfig, i)
		}
		g.strip = append(g.strip, canon)
	}
	return g, nil
}

// Handle runs header-guard on one request. A misconfigured instance answers
// 500 edge_misconfigured.
func (c *Config) Handle(ex exchange.Exchange) { c.rt.Handle(Name, ex, c.Provision, nil) }

// Access is the Kong access-phase handler. The adapter reads max_headers+1
// headers in one call, so a request over the limit is refused, not half
// read.
func (c *Config) Access(kong *pdk.PDK) { c.rt.Access(Name, kong, c.Provision, nil) }

// MaxHeaders is the header-line limit the Kong adapter reads with.
func (g *Guard) MaxHeaders() int { return g.maxHeaders }

// Guard is a validated header-guard configuration.
type Guard struct {
	maxHeaders int
	maxBytes   int
	strip      []string // canonical: lower case, '_' as '-'
	newID      func() string
}

// Handle refuses a request with too many or too large headers (431), clears
// reserved identity headers, headers named in Connection, configured extra
// headers and '_' spellings of X-Request-ID from the upstream request, and
// sets X-Request-ID upstream and on the response.
func (g *Guard) Handle(ex exchange.Exchange) {
	// lower case: no allocation in the adapters. Valid also refuses
	// credential-shaped ids (sk_…, eyJ… with two dots): they are replaced.
	id := ex.Header("x-request-id")
	if !requestid.Valid(id) {
		id = g.newID()
	}
	// later steps of the same exchange (the all-in-one plugin) still read
	// the client's header: they ask the host for this id (no PDK call)
	if h, ok := ex.(exchange.RequestIDHolder); ok {
		h.SetRequestID(id)
	}
	ex.SetResponseHeader(HeaderRequestID, id) // also sent with a 431

	if ex.TooManyHeaders() {
		exchange.Deny(ex, 431, CodeTooManyHeaders, "request has too many headers", nil)
		return
	}
	h := ex.Headers()
	lines, size := 0, 0
	for name, values := range h {
		lines += len(values)
		for _, v := range values {
			size += len(name) + len(v) + 4 // "name: value\r\n"
		}
	}
	if lines > g.maxHeaders {
		exchange.Deny(ex, 431, CodeTooManyHeaders, "request has too many headers", nil)
		return
	}
	if size > g.maxBytes {
		exchange.Deny(ex, 431, CodeHeadersTooLarge, "request headers are too large", nil)
		return
	}

	strip := identity.StripList(h)
	for name := range h {
		if g.extra(name) && !contains(strip, name) {
			strip = append(strip, name)
		}
	}
	for _, name := range strip {
		ex.ClearUpstreamHeader(name)
	}
	ex.SetUpstreamHeader(HeaderRequestID, id)
}

// extra reports whether name must go although it is not reserved: a
// configured strip header, or X-Request-ID spelled with '_' (set_headers
// replaces X-Request-ID but not X_Request_ID, which CGI-style servers would
// read as the same variable).
func (g *Guard) extra(name string) bool {
	if headername.EqualCanonical(name, "x-request-id") && !headername.EqualFold(name, "x-request-id") {
		return true
	}
	for _, s := range g.strip {
		if headername.EqualCanonical(name, s) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Package headerguard is the header-guard plugin, the edge's first plugin on
// every route (priority 1510): its Kong configuration and its two stages.
// The request-id stage gives every request a well-formed X-Request-ID (on
// the response, so a 431 carries it too); the guard stage refuses requests
// with too large headers (431 headers_too_large; too many lines are the
// runtime's 431 too_many_headers, package pipeline), removes client copies
// of every identity header the edge owns (and every header the client
// names in Connection, and configured extra headers) before anything
// upstream can trust them, and sets X-Request-ID upstream.
//
// It runs in the access phase only: a Kong Response handler would make Kong
// buffer whole upstream bodies and break streaming (SSE). It does not
// authenticate anyone.
package headerguard

import (
	"errors"
	"fmt"

	"net/http"
	"slices"

	"github.com/edgeguard/edgeguard/pkg/headername"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/kongjson"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

// Name is the plugin's Kong name; Priority its Kong priority, before every
// other edgeguard plugin (the all-in-one plugin has it too).
const (
	Name     = "header-guard"
	Priority = 1510
)

// Bounds of max_header_bytes (max_headers: exchange.MaxHeadersOption).
const (
	DefaultMaxHeaderBytes = 32 << 10
	MinMaxHeaderBytes     = 1 << 10
	MaxMaxHeaderBytes     = 1 << 20
)

// HeaderRequestID is the request id header header-guard owns.
const HeaderRequestID = "X-Request-ID"

// CodeHeadersTooLarge answers headers over max_header_bytes (431).
const CodeHeadersTooLarge = "headers_too_large"

const maxStripHeaderLength = 256

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

	rt pipeline.Instance
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
		maxBytes: c.MaxHeaderBytes,
		newID:    requestid.New,
	}
	var err error
	if g.maxHeaders, err = exchange.MaxHeadersOption(c.MaxHeaders); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
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

// PluginName is the plugin's Kong name.
func (c *Config) PluginName() string { return Name }

// Pipeline is the plugin's pipeline (its two stages), provisioned once per
// configuration. The host reads max_headers+1 headers in one call, so a
// request over the limit is refused, not half read.
func (c *Config) Pipeline() (*pipeline.Pipeline, error) {
	return c.rt.Get(Name, nil, pipeline.Build(c.Provision, (*Guard).pipeline))
}

// pipeline is the stand-alone plugin's pipeline of g.
func (g *Guard) pipeline() *pipeline.Pipeline {
	return pipeline.New(Name, pipeline.Options{MaxHeaders: g.maxHeaders}, g.Stages()...)
}

// Handle runs the plugin on one request of host (tests; Kong runs the same
// pipeline through kongadapter.Access).
func (c *Config) Handle(host exchange.Exchange) pipeline.Outcome { return pipeline.Handle(host, c) }

// MaxHeaders is the header-line limit (max_headers): the request's limit
// in any pipeline header-guard is part of.
func (g *Guard) MaxHeaders() int { return g.maxHeaders }

// Stages are header-guard's stages: the request id, then the guard.
func (g *Guard) Stages() []pipeline.Stage { return []pipeline.Stage{requestIDStage{g}, g} }

// Guard is a validated header-guard configuration.
type Guard struct {
	maxHeaders int
	maxBytes   int
	strip      []string // canonical: lower case, '_' as '-'
	newID      func() string
}

// requestIDStage gives the request its X-Request-ID: the client's when
// acceptable (requestid.Valid also refuses credential-shaped ids: sk_…,
// eyJ… with two dots), else a new one; on the response at once, so every
// answer carries it (a 431 included).
type requestIDStage struct{ g *Guard }

func (requestIDStage) NeedsHeaders() bool { return false }

func (s requestIDStage) Run(r *pipeline.Request) pipeline.Result {
	id := r.Header("x-request-id") // lower case: no allocation in the adapters
	if !requestid.Valid(id) {
		id = s.g.newID()
	}
	// later stages still read the client's header: they ask the request
	r.SetRequestID(id)
	r.SetResponseHeader(HeaderRequestID, id)
	return pipeline.Next
}

// NeedsHeaders: the guard decides on every header.
func (g *Guard) NeedsHeaders() bool { return true }

// Run refuses a request with too large headers (431), clears reserved
// identity headers, headers named in Connection, configured extra headers
// and '_' spellings of X-Request-ID from the upstream request, and sets
// X-Request-ID upstream (after the clears: a later clear would cancel it).
func (g *Guard) Run(r *pipeline.Request) pipeline.Result {
	h := r.Headers()
	size := 0
	for name, values := range h {
		for _, v := range values {
			size += len(name) + len(v) + 4 // "name: value\r\n"
		}
	}
	if size > g.maxBytes {
		return pipeline.Deny(http.StatusRequestHeaderFieldsTooLarge, CodeHeadersTooLarge, "request headers are too large", nil)
	}
	var extra []string
	for name := range h {
		if g.extra(name) && !slices.Contains(extra, name) {
			extra = append(extra, name)
		}
	}
	r.StripIdentity(extra...)
	r.SetUpstreamHeader(HeaderRequestID, r.RequestID())
	return pipeline.Next
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

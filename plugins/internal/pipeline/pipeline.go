// Package pipeline is the edge runtime: it runs a plugin's stages, in
// order, on one request of a host (package exchange: Kong through package
// kongadapter, tests through exchange.Fake) and owns what every stage would
// otherwise repeat:
//
//   - the header limit: before the first stage that decides on the request's
//     headers, a request with more header lines than the pipeline reads is
//     answered 431 too_many_headers (a host reads at most MaxHeaders+1 lines,
//     so a stage never decides on a partial view);
//   - the answers: a stage returns a Result; the runtime renders the edge's
//     JSON error, emits the audit event of a denial (before the exit: Kong
//     closes the request's PDK event with it) and ends the request;
//   - failure: a stage that panics, a host read that failed and a flush that
//     failed are answered 500 edge_error, never let through;
//   - configuration: an Instance provisions a plugin's pipeline once and a
//     misconfigured instance answers 500 edge_misconfigured (Misconfigured).
//
// The stages (package headerguard, the authenticators of keycloakjwt and
// keycloakapikey, the authorize and admit stages of package auth, the
// limiter of redisratelimit) know nothing of Kong, audit or each other: what
// they share travels in the Request.
package pipeline

import (
	"fmt"
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// Error codes the runtime answers with.
const (
	// CodeTooManyHeaders: more header lines than the pipeline reads (431).
	CodeTooManyHeaders = "too_many_headers"
	// CodeEdgeError: a stage panicked or the host failed (500).
	CodeEdgeError = "edge_error"
	// CodeMisconfigured: the plugin instance's configuration is invalid (500).
	CodeMisconfigured = "edge_misconfigured"
)

// Result is what a stage decides: Next (the request goes on to the next
// stage) or an answer that ends the request.
type Result struct {
	// Status is the answer's HTTP status; 0 means the request goes on.
	Status int
	// Code is the stable error code, Message a generic sentence (never a
	// credential or a claim).
	Code, Message string
	// Headers are extra answer headers (WWW-Authenticate, Retry-After…).
	Headers map[string]string
	// Refused is the verified identity a 403 refused, for the audit event.
	Refused *identity.Identity
}

// Next lets the request go on.
var Next = Result{}

// Ends reports whether r ends the request.
func (r Result) Ends() bool { return r.Status != 0 }

// Deny is an answer that ends the request; headers may be nil.
func Deny(status int, code, message string, headers map[string]string) Result {
	return Result{Status: status, Code: code, Message: message, Headers: headers}
}

// Forbid is a 403 for id, a verified identity the route's policy refused.
func Forbid(id *identity.Identity, code, message string, headers map[string]string) Result {
	return Result{Status: http.StatusForbidden, Code: code, Message: message, Headers: headers, Refused: id}
}

// Stage is one provisioned step of the pipeline. Stages are built once per
// configuration and run concurrently on many requests.
type Stage interface {
	// NeedsHeaders reports whether the stage decides on the request's
	// headers: the runtime checks the header limit before it runs.
	NeedsHeaders() bool
	// Run decides one request.
	Run(r *Request) Result
}

// StageFunc is a Stage from a function (tests, small hosts).
func StageFunc(needsHeaders bool, run func(*Request) Result) Stage {
	return stageFunc{needs: needsHeaders, run: run}
}

type stageFunc struct {
	needs bool
	run   func(*Request) Result
}

func (s stageFunc) NeedsHeaders() bool    { return s.needs }
func (s stageFunc) Run(r *Request) Result { return s.run(r) }

// Options shape a Pipeline.
type Options struct {
	// MaxHeaders is the most header lines a request may carry, the number
	// the host reads (+1); 0 means exchange.DefaultMaxHeaders, values above
	// exchange.MaxMaxHeaders are clamped.
	MaxHeaders int
	// Fresh says no identity can have been recorded before this pipeline
	// (the all-in-one plugin runs before every other edgeguard plugin):
	// Request.Identity then never asks the host (no PDK round trip).
	Fresh bool
}

// Pipeline is a plugin's provisioned stages.
type Pipeline struct {
	name       string
	stages     []Stage
	maxHeaders int
	fresh      bool
	audit      *audit.Emitter
}

// New returns the pipeline of the named plugin.
func New(name string, opts Options, stages ...Stage) *Pipeline {
	return &Pipeline{name: name, stages: stages, maxHeaders: exchange.ClampMaxHeaders(opts.MaxHeaders), fresh: opts.Fresh}
}

// Name is the plugin's name (audit source, metrics).
func (p *Pipeline) Name() string { return p.name }

// MaxHeaders is the header-line limit the host reads with.
func (p *Pipeline) MaxHeaders() int { return p.maxHeaders }

// WithAudit returns a copy of p that emits the audit events of its denials
// to em (nil: none).
func (p *Pipeline) WithAudit(em *audit.Emitter) *Pipeline {
	c := *p
	c.audit = em
	return &c
}

// Outcome is how a request left the pipeline.
type Outcome struct {
	// Status is the answer's status, 0 when the request went upstream.
	Status int
	// Code is the answer's error code, "" when the request went upstream.
	Code string
	// Refused is the identity a 403 refused.
	Refused *identity.Identity
	// Err is the failure behind a 500 edge_error (a panic, a failed host
	// call); nil otherwise.
	Err error
}

// Run runs p's stages on one request of host, in order, until one answers;
// then flushes the host's buffered writes. It never panics and never lets a
// request through when a stage panicked or the host failed.
func Run(host exchange.Exchange, p *Pipeline) (out Outcome) {
	r := &Request{Exchange: host, p: p}
	defer func() {
		if v := recover(); v != nil {
			out = r.fail(fmt.Errorf("stage panicked: %v", v))
		}
	}()
	for _, s := range p.stages {
		if s.NeedsHeaders() && !r.headersChecked {
			r.headersChecked = true
			if exchange.CountValues(r.Headers()) > p.maxHeaders {
				return r.answer(Deny(http.StatusRequestHeaderFieldsTooLarge, CodeTooManyHeaders, "request has too many headers", nil))
			}
		}
		if res := s.Run(r); res.Ends() {
			return r.answer(res)
		}
	}
	if err := host.Failed(); err != nil {
		return r.fail(err)
	}
	if err := host.Flush(); err != nil {
		return r.fail(err)
	}
	return Outcome{}
}

// Misconfigured answers host 500 edge_misconfigured: the plugin instance's
// configuration is invalid (the reason is logged once, never answered).
func Misconfigured(host exchange.Exchange) Outcome {
	r := &Request{Exchange: host, p: &Pipeline{}}
	return r.answer(Deny(http.StatusInternalServerError, CodeMisconfigured, "the gateway is misconfigured", nil))
}

// answer ends the request with res: the audit event first (the host may not
// be readable after the exit), then one exit with the JSON error.
func (r *Request) answer(res Result) Outcome {
	h := make(map[string]string, len(res.Headers)+1)
	for k, v := range res.Headers {
		h[k] = v
	}
	h["Content-Type"] = exchange.ContentTypeJSON
	if r.p.audit != nil && !r.Exited() {
		r.auditDenial(res)
	}
	r.Exit(res.Status, exchange.ErrorBody(res.Code, res.Message), h)
	r.out = Outcome{Status: res.Status, Code: res.Code, Refused: res.Refused}
	return r.out
}

// fail answers 500 edge_error (unless the request was already answered).
func (r *Request) fail(err error) Outcome {
	if r.Exited() {
		out := r.out
		out.Err = err
		return out
	}
	out := r.answer(Deny(http.StatusInternalServerError, CodeEdgeError, "the gateway could not process the request", nil))
	out.Err = err
	return out
}

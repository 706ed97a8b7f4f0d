package pipeline

import (
	"slices"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// Request is one request in the pipeline: the host's exchange plus what the
// stages hand each other. Identity travels here and through the host's
// Authenticated/SetAuthenticated (Kong: kong.ctx.shared), never through
// request headers.
type Request struct {
	exchange.Exchange
	p *Pipeline

	headersChecked bool
	requestID      string
	out            Outcome

	prior     *identity.Identity
	priorRead bool

	// Auth is what the authentication stages found (package auth).
	Auth AuthState
}

// AuthState is what the authentication stages of this run found, for the
// authorize and admit stages (package auth).
type AuthState struct {
	// Admitted is the first identity authenticated in this run: the
	// request's identity once the admit stage records it. Nil: none.
	Admitted *identity.Identity
	// Consumer tells the admit stage to name Admitted's consumer to the
	// host (kong.client.authenticate).
	Consumer bool
	// Last is the identity the most recent authenticate stage produced —
	// what the next authorize stage checks; nil when that stage found none.
	Last *identity.Identity
	// ScopeChallenge makes a 403 insufficient_scope of Last carry the
	// RFC 6750 challenge (bearer tokens; not API keys).
	ScopeChallenge bool
	// Assert adds the edge-signed assertion for Admitted (the admitting
	// authenticate stage's; nil: none).
	Assert Asserter
	// Prior: the request arrived authenticated by an earlier plugin
	// (Request.Identity, Admitted nil) and this run only confirmed it: the
	// admit stage then adds nothing but the credential removals.
	Prior bool
	// hides are the credential removals from the upstream request
	// (AddHide), applied by the admit stage after its header writes
	// (ApplyHides). Two fit without an allocation: a pipeline has at most
	// two authenticators.
	hides  [2]hide
	nHides int
	more   []hide
}

// Hider removes a credential it found from the upstream request (an
// authenticator of package auth).
type Hider interface {
	Hide(ex exchange.Exchange, headers map[string][]string, c any)
}

type hide struct {
	h Hider
	c any
}

// AddHide records that h's credential c is to be removed upstream.
func (s *AuthState) AddHide(h Hider, c any) {
	if s.nHides < len(s.hides) {
		s.hides[s.nHides] = hide{h, c}
		s.nHides++
		return
	}
	s.more = append(s.more, hide{h, c})
}

// ApplyHides removes the recorded credentials from r's upstream request.
func (s *AuthState) ApplyHides(r *Request) {
	headers := r.Headers()
	for _, x := range s.hides[:s.nHides] {
		x.h.Hide(r, headers, x.c)
	}
	for _, x := range s.more {
		x.h.Hide(r, headers, x.c)
	}
}

// Asserter adds the edge-signed identity assertion upstream (package
// edgeassert); an error means the request must not go on.
type Asserter interface {
	Add(ex exchange.Exchange, id *identity.Identity) error
}

// SetRequestID keeps the request id header-guard assigned, for the rest of
// the request (later stages still read the client's header).
func (r *Request) SetRequestID(id string) { r.requestID = id }

// RequestID is the request's id: the one header-guard assigned, else the
// client's X-Request-ID when acceptable (requestid.Valid: never a
// credential-shaped value), else "".
func (r *Request) RequestID() string {
	if r.requestID != "" {
		return r.requestID
	}
	if id := r.Header(requestid.Header); requestid.Valid(id) {
		return id
	}
	return ""
}

// Identity is the request's authenticated identity: the one admitted in
// this run, else (unless the pipeline is Fresh) the one an earlier plugin
// recorded with the host — read at most once.
func (r *Request) Identity() (*identity.Identity, bool) {
	if id := r.Auth.Admitted; id != nil {
		return id, true
	}
	if r.p.fresh {
		return nil, false
	}
	if !r.priorRead {
		r.priorRead = true
		r.prior, _ = r.Authenticated()
	}
	return r.prior, r.prior != nil
}

// StripIdentity removes from the upstream request every client copy of a
// reserved identity header (identity.StripList: X-User-*, X-Edge-Identity…,
// and headers the client names in Connection), and the extra names given
// (each once). Stages that let a request on call it before setting any
// identity header: a later clear would cancel the set.
func (r *Request) StripIdentity(extra ...string) {
	strip := identity.StripList(r.Headers())
	for _, name := range extra {
		if !slices.Contains(strip, name) {
			strip = append(strip, name)
		}
	}
	for _, name := range strip {
		r.ClearUpstreamHeader(name)
	}
}

package auth

import (
	"github.com/edgeguard/edgeguard/plugins/internal/edgeassert"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

// Options are what the credential plugins (keycloak-jwt, keycloak-apikey)
// configure alike besides their authenticator: the route policy, the edge
// assertion (upstream_name + edge_signing_key_file) and max_headers.
type Options struct {
	Policy             PolicyOptions
	UpstreamName       string
	EdgeSigningKeyFile string
	MaxHeaders         int
}

// Stages are a credential plugin's provisioned stages: authenticate, then
// authorize. A stand-alone plugin runs them with an admit stage
// (Pipeline); the all-in-one plugin composes both plugins' stages before
// one admit stage.
type Stages struct {
	Authenticate Authenticate
	Authorize    Authorize
	// MaxHeaders is the header-line limit (max_headers).
	MaxHeaders int
}

// NewStages validates o and builds the stages of authenticate (its
// Authenticator and flags set by the caller; Assert is set here).
func NewStages(authenticate Authenticate, o Options) (*Stages, error) {
	policy, err := o.Policy.Policy()
	if err != nil {
		return nil, err
	}
	assert, err := edgeassert.New(o.UpstreamName, o.EdgeSigningKeyFile)
	if err != nil {
		return nil, err
	}
	max, err := exchange.MaxHeadersOption(o.MaxHeaders)
	if err != nil {
		return nil, err
	}
	if assert != nil { // a nil *Asserter in the interface would not be nil
		authenticate.Assert = assert
	}
	return &Stages{Authenticate: authenticate, Authorize: Authorize{Policy: policy}, MaxHeaders: max}, nil
}

// List is authenticate, authorize.
func (s *Stages) List() []pipeline.Stage { return []pipeline.Stage{&s.Authenticate, &s.Authorize} }

// Pipeline is the stand-alone plugin's pipeline: authenticate, authorize,
// admit.
func (s *Stages) Pipeline(name string) *pipeline.Pipeline {
	return pipeline.New(name, pipeline.Options{MaxHeaders: s.MaxHeaders}, &s.Authenticate, &s.Authorize, Admit{})
}

// Package auth holds the pipeline's three authentication stages, which the
// JWT and API-key plugins (and the all-in-one plugin) compose:
//
//   - Authenticate runs one Authenticator (keycloakjwt's JWT, keycloakapikey's
//     API key): the authenticator finds its credential — not present, not
//     its kind ("not mine"), duplicate, or present — and verifies it into an
//     identity or a refusal; the stage answers what is common to every
//     credential (duplicates, a missing credential, two credentials of
//     different users) with the same codes and RFC 6750 challenges.
//   - Authorize applies the route's policy (pkg/identity.Policy) to the
//     identity the authenticate stage before it produced.
//   - Admit lets the request on: it strips client copies of identity
//     headers, adds the edge-signed assertion and the upstream identity
//     headers, removes the credentials (hide_credentials) and records the
//     identity with the host for later plugins (never in request headers).
//
// A present but invalid credential is always refused — never a fall-through
// to anonymous; credential_optional only lets a request with NO credential
// of the kind through.
package auth

import (
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

// Realm is the realm of the edge's Bearer challenges.
const Realm = "edgeguard"

// WWW-Authenticate challenges (RFC 6750 §3) of the edge's answers.
var (
	ChallengeMissing = identity.Challenge(Realm, "")
	ChallengeInvalid = identity.Challenge(Realm, identity.ChallengeInvalidToken)
	ChallengeRequest = identity.Challenge(Realm, identity.ChallengeInvalidRequest)
	ChallengeScope   = identity.Challenge(Realm, identity.ChallengeInsufficientScope)
)

// Error codes of the authentication stages (besides the authenticators'
// own reasons and pkg/identity's denials).
const (
	CodeCredentialMissing    = identity.CodeCredentialMissing
	CodeDuplicateCredentials = identity.CodeDuplicateCredentials
	CodeSubjectMismatch      = "credential_subject_mismatch"
)

// Found is what an authenticator found of its credential in a request.
type Found uint8

const (
	// NotPresent: no credential of the authenticator's kind.
	NotPresent Found = iota
	// NotMine: a credential in a place the authenticator reads, but of
	// another kind (an `sk_` key in Authorization: Bearer is not a JWT).
	NotMine
	// Duplicate: two different credentials, or a repeated credential
	// header — refused, never a guess at which one counts.
	Duplicate
	// Present: one credential, to verify.
	Present
)

// Credential is a credential an Authenticator found, opaque to the stage.
type Credential = any

// Authenticator is one kind of credential.
type Authenticator interface {
	// Find looks for the credential in the request's headers (names lower
	// case). It does no I/O.
	Find(headers map[string][]string) (Credential, Found)
	// Verify turns a present credential into an identity, or answers the
	// refusal (401 with its reason, 429, 503 when the verifier is away).
	Verify(r *pipeline.Request, c Credential) (*identity.Identity, pipeline.Result)
	// Hide removes the credential from the upstream request.
	Hide(ex exchange.Exchange, headers map[string][]string, c Credential)
}

// Authenticate is the authenticate stage of one Authenticator.
type Authenticate struct {
	Authenticator Authenticator
	// Optional lets a request without the credential through
	// (credential_optional): the admit stage then only strips.
	Optional bool
	// ConfirmPrior: a request already authenticated (by an earlier plugin,
	// or an earlier authenticate stage of the pipeline) passes without
	// this credential, and with it only when it names the same subject.
	ConfirmPrior bool
	// HideCredential removes the credential upstream (hide_credentials).
	HideCredential bool
	// Consumer names the identity's consumer to the host
	// (authenticate_consumer) when this stage admits it.
	Consumer bool
	// ScopeChallenge adds the insufficient_scope challenge to a 403 of the
	// identity (bearer tokens).
	ScopeChallenge bool
	// Assert adds the edge-signed assertion when this stage admits the
	// identity (nil: none).
	Assert pipeline.Asserter
	// MissingChallenge is the WWW-Authenticate of a missing credential
	// (default ChallengeMissing; a route that requires DPoP-bound tokens
	// names the DPoP scheme).
	MissingChallenge string
}

var _ pipeline.Stage = (*Authenticate)(nil)

// NeedsHeaders: credentials are in headers.
func (s *Authenticate) NeedsHeaders() bool { return true }

// Run authenticates one request.
func (s *Authenticate) Run(r *pipeline.Request) pipeline.Result {
	st := &r.Auth
	st.Last = nil
	headers := r.Headers()
	cred, found := s.Authenticator.Find(headers)
	if found == Duplicate {
		return pipeline.Deny(http.StatusUnauthorized, CodeDuplicateCredentials, "more than one credential",
			map[string]string{"WWW-Authenticate": ChallengeRequest})
	}
	var prev *identity.Identity
	if s.ConfirmPrior {
		prev, _ = r.Identity()
	}
	if found != Present {
		switch {
		case prev != nil:
			st.Prior = st.Admitted == nil
		case s.Optional:
		default:
			challenge := s.MissingChallenge
			if challenge == "" {
				challenge = ChallengeMissing
			}
			return pipeline.Deny(http.StatusUnauthorized, CodeCredentialMissing, "authentication required",
				map[string]string{"WWW-Authenticate": challenge})
		}
		return pipeline.Next
	}
	id, res := s.Authenticator.Verify(r, cred)
	if res.Ends() {
		return res
	}
	if prev != nil && prev.Subject != id.Subject {
		return pipeline.Deny(http.StatusUnauthorized, CodeSubjectMismatch, "credentials of different users",
			map[string]string{"WWW-Authenticate": ChallengeRequest})
	}
	st.Last, st.ScopeChallenge = id, s.ScopeChallenge
	if s.HideCredential {
		st.AddHide(s.Authenticator, cred)
	}
	switch {
	case prev == nil:
		st.Admitted, st.Consumer, st.Assert = id, s.Consumer, s.Assert
	case st.Admitted == nil: // the earlier plugin's identity stays the request's
		st.Prior = true
	}
	return pipeline.Next
}

// Authorize is the authorize stage: the route's policy applied to the
// identity the authenticate stage before it produced (none: nothing to do).
type Authorize struct {
	Policy identity.Policy
}

var _ pipeline.Stage = (*Authorize)(nil)

// NeedsHeaders: the identity is decided already.
func (s *Authorize) NeedsHeaders() bool { return false }

// Run refuses (403) an identity the policy does not allow.
func (s *Authorize) Run(r *pipeline.Request) pipeline.Result {
	id := r.Auth.Last
	if id == nil {
		return pipeline.Next
	}
	if d := s.Policy.Authorize(id); d != identity.Allowed {
		var h map[string]string
		if d == identity.DenyInsufficientScope && r.Auth.ScopeChallenge {
			h = map[string]string{"WWW-Authenticate": ChallengeScope}
		}
		return pipeline.Forbid(id, string(d), "access denied", h)
	}
	return pipeline.Next
}

// Admit is the admit stage, last of the authentication stages.
type Admit struct{}

var _ pipeline.Stage = Admit{}

// NeedsHeaders: stripping reads every header.
func (Admit) NeedsHeaders() bool { return true }

// Run lets the request on. With an identity authenticated in this run:
// strip client identity headers (before any set: a later clear would cancel
// it), the edge assertion, the upstream identity headers, the credential
// removals, the identity recorded with the host (and its consumer). With an
// identity an earlier plugin recorded: only the credential removals.
// Without any (credential_optional): only the strip.
func (Admit) Run(r *pipeline.Request) pipeline.Result {
	st := &r.Auth
	switch id := st.Admitted; {
	case id != nil:
		r.StripIdentity()
		if st.Assert != nil {
			if err := st.Assert.Add(r, id); err != nil {
				return pipeline.Deny(http.StatusInternalServerError, pipeline.CodeEdgeError, "internal error", nil)
			}
		}
		id.UpstreamHeaders(r.SetUpstreamHeader)
		st.ApplyHides(r)
		r.SetAuthenticated(id)
		if st.Consumer {
			r.AuthenticateConsumer(id.Subject, id.Username, id.APIKeyID)
		}
	case st.Prior:
		st.ApplyHides(r)
	default:
		r.StripIdentity()
	}
	return pipeline.Next
}

// PolicyOptions is the route policy as the plugins' configs spell it (the
// same five options in keycloak-jwt and keycloak-apikey; Kong configs stay
// flat, so each config lists them and converts with Policy).
type PolicyOptions struct {
	RequiredRoles  []string
	RolesMode      string
	ForbiddenRoles []string
	RequiredScopes []string
	AuthMethods    []string
}

// Policy returns the validated identity.Policy of o.
func (o PolicyOptions) Policy() (identity.Policy, error) {
	p := identity.Policy{
		RequiredRoles:  o.RequiredRoles,
		RolesMode:      o.RolesMode,
		ForbiddenRoles: o.ForbiddenRoles,
		RequiredScopes: o.RequiredScopes,
		AuthMethods:    o.AuthMethods,
	}
	return p, p.Validate()
}

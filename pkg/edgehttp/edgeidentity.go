package edgehttp

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

// AssertionVerifier is what EdgeIdentity needs of an *edgeid.Verifier:
// verify an assertion for a request with this method and path and return
// its claims. Every refusal wraps edgeid.ErrRejected; any other error is a
// technical failure.
type AssertionVerifier interface {
	VerifyClaims(assertion, method, path string) (*edgeid.Claims, error)
}

// ClientAuthenticator is an Authenticator whose credential may also name
// the client's address as the edge decided it (the assertion's cip claim).
// Middleware puts that address in the request context (ClientIPFrom), and
// services use it, not X-Forwarded-For, on authenticated routes.
type ClientAuthenticator interface {
	Authenticator
	// AuthenticateClient is Authenticate that also returns the verified
	// client address (the zero Addr when the credential names none).
	AuthenticateClient(r *http.Request) (*identity.Identity, netip.Addr, error)
}

var _ AssertionVerifier = (*edgeid.Verifier)(nil)

// CodeEdgeIdentityInvalid answers an X-Edge-Identity assertion that is
// present but refused: bad signature or unknown key, another service (aud),
// another method (htm) or path (htu), expired, malformed. The check that
// failed goes to the log (Rejection.Detail), not to the client.
const CodeEdgeIdentityInvalid = "edge_identity_invalid"

// EdgeIdentity authenticates the edge-signed assertion in X-Edge-Identity
// (pkg/edgeid) for this service: the verifier holds the edge's public keys
// and the service name (the assertion's aud); the assertion must be bound to
// the request's method and path (r.Method, r.URL.Path — the path the edge
// saw: routes keep it, strip_path is false).
//
// The identity comes only from the verified claims. The informational
// X-User-* / X-Auth-Method headers the edge also sets are never read: a
// request with those but no valid assertion has no identity. So does the
// client address: the assertion's cip claim (AuthenticateClient).
type EdgeIdentity struct {
	Verifier AssertionVerifier
}

var _ ClientAuthenticator = (*EdgeIdentity)(nil)

// Authenticate implements Authenticator: no X-Edge-Identity header is
// ErrNoCredential; two header lines are 401 duplicate_credentials; a refused
// assertion is 401 edge_identity_invalid.
func (e *EdgeIdentity) Authenticate(r *http.Request) (*identity.Identity, error) {
	id, _, err := e.AuthenticateClient(r)
	return id, err
}

// AuthenticateClient implements ClientAuthenticator: Authenticate, and the
// assertion's client address.
func (e *EdgeIdentity) AuthenticateClient(r *http.Request) (*identity.Identity, netip.Addr, error) {
	vals := r.Header.Values(identity.HeaderEdgeIdentity)
	switch len(vals) {
	case 0:
		return nil, netip.Addr{}, ErrNoCredential
	case 1:
	default:
		return nil, netip.Addr{}, &Rejection{Status: http.StatusUnauthorized, Code: CodeDuplicateCredentials,
			Message: "more than one credential", Challenge: identity.ChallengeInvalidRequest}
	}
	path := ""
	if r.URL != nil {
		path = r.URL.Path
	}
	c, err := e.Verifier.VerifyClaims(strings.TrimSpace(vals[0]), r.Method, path)
	if err != nil {
		if !errors.Is(err, edgeid.ErrRejected) {
			return nil, netip.Addr{}, err
		}
		// edgeid's messages name the check, never the assertion.
		return nil, netip.Addr{}, &Rejection{Status: http.StatusUnauthorized, Code: CodeEdgeIdentityInvalid,
			Message: "invalid edge identity", Challenge: identity.ChallengeInvalidToken, Detail: err.Error()}
	}
	return &c.Identity, c.ClientIP(), nil
}

// Chain tries its Authenticators in order and lets the first one whose
// credential is present decide: its identity, or its refusal — a present but
// invalid credential never falls through to the next one (docs/architecture.md
// "Credentials and the route policy": an invalid credential is always 401).
// When none finds its credential, Chain returns ErrNoCredential.
//
// Services use Chain{&EdgeIdentity{…}, &JWT{…}}: the edge's assertion when
// the request came through the edge, else (when configured) a Keycloak JWT
// the service verifies itself. A request carrying an assertion is decided by
// the assertion alone (its Authorization header may hold an API key the edge
// already validated).
type Chain []Authenticator

var _ ClientAuthenticator = Chain(nil)

// Authenticate implements Authenticator.
func (c Chain) Authenticate(r *http.Request) (*identity.Identity, error) {
	id, _, err := c.AuthenticateClient(r)
	return id, err
}

// AuthenticateClient implements ClientAuthenticator: the deciding
// authenticator's client address, when it is a ClientAuthenticator.
func (c Chain) AuthenticateClient(r *http.Request) (*identity.Identity, netip.Addr, error) {
	for _, a := range c {
		id, addr, err := authenticate(a, r)
		if errors.Is(err, ErrNoCredential) {
			continue
		}
		return id, addr, err
	}
	return nil, netip.Addr{}, ErrNoCredential
}

// authenticate asks a for the identity and, when it can tell, the client
// address.
func authenticate(a Authenticator, r *http.Request) (*identity.Identity, netip.Addr, error) {
	if ca, ok := a.(ClientAuthenticator); ok {
		return ca.AuthenticateClient(r)
	}
	id, err := a.Authenticate(r)
	return id, netip.Addr{}, err
}

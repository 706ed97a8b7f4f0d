package edgehttp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// Verifier is what JWT needs of a *jwtauth.Verifier.
type Verifier interface {
	Verify(ctx context.Context, token string) (*identity.Identity, error)
}

var _ Verifier = (*jwtauth.Verifier)(nil)

// JWT authenticates "Authorization: Bearer <jwt>" with a jwtauth verifier.
// A Bearer value that is an API key (sk_…) is refused (401
// credential_not_accepted): services do not validate keys, the edge does.
// A DPoP-bound token (cnf.jkt) is refused too (401 dpop_downgrade): its
// proof is checked at the edge, which then speaks for the request with
// X-Edge-Identity; sent here as a bearer token it would be a stolen
// token's way around the proof.
type JWT struct {
	Verifier Verifier
	// Timeout bounds the wait for keys on a cold JWKS (default 5 s).
	Timeout time.Duration
}

var _ Authenticator = (*JWT)(nil)

// apiKeyPrefix marks an API key in "Authorization: Bearer sk_…".
const apiKeyPrefix = "sk_"

// Authenticate implements Authenticator.
func (j *JWT) Authenticate(r *http.Request) (*identity.Identity, error) {
	tok, st := BearerToken(r.Header)
	switch st {
	case CredAbsent:
		return nil, ErrNoCredential
	case CredDuplicate:
		return nil, &Rejection{Status: http.StatusUnauthorized, Code: CodeDuplicateCredentials,
			Message: "more than one credential", Challenge: identity.ChallengeInvalidRequest}
	}
	if strings.HasPrefix(tok, apiKeyPrefix) {
		return nil, &Rejection{Status: http.StatusUnauthorized, Code: CodeUnsupportedCred,
			Message: "this endpoint accepts only a bearer access token", Challenge: identity.ChallengeInvalidToken}
	}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	id, err := j.Verifier.Verify(ctx, tok)
	if err == nil {
		if id.Cnf != nil {
			return nil, &Rejection{Status: http.StatusUnauthorized, Code: string(dpop.ReasonDowngrade),
				Message: "a DPoP-bound token is accepted only through the gateway", Challenge: identity.ChallengeInvalidToken}
		}
		return id, nil
	}
	reason := jwtauth.ReasonOf(err)
	if reason == "" && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		reason = jwtauth.ReasonIdPUnavailable // waited for keys in vain
	}
	switch reason {
	case "":
		return nil, err
	case jwtauth.ReasonIdPUnavailable:
		return nil, &Rejection{Status: http.StatusServiceUnavailable, Code: string(reason),
			Message: "identity provider unavailable"}
	}
	return nil, &Rejection{Status: http.StatusUnauthorized, Code: string(reason),
		Message: "invalid token", Challenge: identity.ChallengeInvalidToken}
}

// CredStatus is the outcome of BearerToken.
type CredStatus uint8

// BearerToken outcomes.
const (
	CredAbsent    CredStatus = iota // no Authorization header, or another scheme
	CredFound                       // one Bearer credential
	CredDuplicate                   // more than one Authorization header line
)

// BearerToken parses the Authorization header: "Bearer <token>" with the
// scheme in any case (RFC 9110 §11.1) and optional surrounding whitespace.
// Another scheme (Basic…) counts as absent; two Authorization lines are a
// duplicate (never a guess at which one counts). An empty token after the
// scheme is returned as found and empty, so the verifier rejects it as
// malformed rather than treating it as absent.
func BearerToken(h http.Header) (string, CredStatus) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", CredAbsent
	case 1:
	default:
		return "", CredDuplicate
	}
	v := strings.TrimSpace(vals[0])
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", CredAbsent
	}
	rest := v[len(scheme):]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", CredAbsent // "Bearerx"
	}
	return strings.TrimSpace(rest), CredFound
}

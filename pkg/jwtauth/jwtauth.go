// Package jwtauth verifies Keycloak access tokens at the edge: compact JWS
// signatures against a JWKS that is fetched, cached and refreshed per issuer,
// the claims an access token must carry, and a bounded cache of verified
// tokens. A verified token becomes an identity.Identity.
//
// Keys come from the issuer's JWKS, parsed with github.com/lestrrat-go/jwx/v3;
// the signature itself is checked on the standard library's crypto (RSA
// PKCS#1 v1.5 and PSS, ECDSA P-256/384/521, Ed25519) through a lean compact
// JWS parser, because the hot path must stay close to the cost of the RSA
// verification alone (see BENCHMARKS.md).
//
// It is not an OAuth client: it never fetches tokens, and it does not check
// revocation (Keycloak access tokens are short-lived; the edge trusts them
// until exp).
package jwtauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/rs/zerolog"
)

// Reason is the stable code of a token rejection. It implements error, so a
// rejection is returned as a Reason value (matched with errors.Is or
// ReasonOf); returning one never allocates.
type Reason string

// Rejection reasons. All are HTTP 401 except ReasonIdPUnavailable (503),
// which is a failure of the edge, not of the token.
const (
	ReasonMalformed        Reason = "token_malformed"
	ReasonTooLarge         Reason = "token_too_large"
	ReasonHeaderNotAllowed Reason = "header_not_allowed"
	ReasonAlgNotAllowed    Reason = "alg_not_allowed"
	ReasonKeyAlgMismatch   Reason = "key_alg_mismatch"
	ReasonUnknownKID       Reason = "unknown_kid"
	ReasonSignature        Reason = "signature_invalid"
	ReasonClaimMissing     Reason = "claim_missing"
	ReasonExpired          Reason = "token_expired"
	ReasonNotYetValid      Reason = "token_not_yet_valid"
	ReasonIssuer           Reason = "issuer_mismatch"
	ReasonAudience         Reason = "audience_mismatch"
	ReasonAZP              Reason = "azp_not_allowed"
	ReasonTokenType        Reason = "token_type_invalid"
	// ReasonConfirmation: a cnf claim other than {"jkt": <thumbprint>} —
	// a binding the edge cannot check (a DPoP-bound token's cnf.jkt is
	// passed on as Identity.Cnf; checking its proof is the caller's, pkg/dpop).
	ReasonConfirmation   Reason = "confirmation_unsupported"
	ReasonIdPUnavailable Reason = "idp_unavailable"
)

// Reasons lists every rejection reason (documentation and tests).
var Reasons = []Reason{
	ReasonMalformed, ReasonTooLarge, ReasonHeaderNotAllowed, ReasonAlgNotAllowed,
	ReasonKeyAlgMismatch, ReasonUnknownKID, ReasonSignature, ReasonClaimMissing,
	ReasonExpired, ReasonNotYetValid, ReasonIssuer, ReasonAudience, ReasonAZP,
	ReasonTokenType, ReasonConfirmation, ReasonIdPUnavailable,
}

func (r Reason) Error() string { return "token rejected: " + string(r) }

// Status is the HTTP status the edge answers for the reason.
func (r Reason) Status() int {
	if r == ReasonIdPUnavailable {
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// ReasonOf extracts the Reason from an error returned by Verify ("" if err
// is nil or carries none).
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("invalid jwtauth config")

// DefaultAlgorithms is the algorithm allowlist when none is configured. "none"
// and the HMAC algorithms can never be enabled: with a public JWKS anyone
// could forge an HS256 token keyed with the public key.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Defaults of Config.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultMaxTokenBytes      = 8 << 10
	DefaultRefreshInterval    = 5 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultMaxStale           = 24 * time.Hour
	DefaultFetchTimeout       = 5 * time.Second
	DefaultCacheEntries       = 100_000
	maxJWKSBytes              = 1 << 20
)

// Issuer is one trusted token issuer.
type Issuer struct {
	// Issuer is compared exactly with the token's iss claim.
	Issuer string
	// JWKSURL is where its keys are; empty means OIDC discovery from
	// <Issuer>/.well-known/openid-configuration.
	JWKSURL string
	// Keys, when set, is a fixed key set (offline verification): nothing is
	// fetched.
	Keys *StaticKeys
}

// Config configures a Verifier. Zero durations and sizes take the defaults
// above; a negative Leeway means none.
type Config struct {
	Issuers            []Issuer
	Audiences          []string // any-of; required
	AllowedAZP         []string // empty: any azp
	Algorithms         []string // empty: DefaultAlgorithms
	Leeway             time.Duration
	MaxTokenBytes      int
	RefreshInterval    time.Duration
	MinRefreshInterval time.Duration
	MaxStale           time.Duration
	FetchTimeout       time.Duration
	CacheEntries       int // negative disables the verified-token cache

	HTTPClient *http.Client
	Now        func() time.Time // nil: time.Now
	Logger     zerolog.Logger

	realClock bool // Now was nil: cache hits may use the coarse clock
}

func (c *Config) setDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	} else if c.Leeway < 0 {
		c.Leeway = 0
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.MinRefreshInterval == 0 {
		c.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if c.MaxStale == 0 {
		c.MaxStale = DefaultMaxStale
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.FetchTimeout}
	}
	if c.Now == nil {
		c.Now = time.Now
		c.realClock = true
	}
}

// Validate checks a configuration (after defaults) without side effects.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if len(c.Issuers) == 0 {
		return bad("at least one issuer is required")
	}
	seen := map[string]bool{}
	for _, is := range c.Issuers {
		if err := checkURL(is.Issuer); err != nil {
			return bad("issuer %q: %v", is.Issuer, err)
		}
		if seen[is.Issuer] {
			return bad("issuer %q listed twice", is.Issuer)
		}
		seen[is.Issuer] = true
		if is.Keys != nil && is.JWKSURL != "" {
			return bad("issuer %q: a static key set and a jwks_url are exclusive", is.Issuer)
		}
		if is.JWKSURL != "" {
			if err := checkURL(is.JWKSURL); err != nil {
				return bad("jwks_url %q: %v", is.JWKSURL, err)
			}
		}
	}
	if len(c.Audiences) == 0 {
		return bad("at least one audience is required")
	}
	if slices.Contains(c.Audiences, "") || slices.Contains(c.AllowedAZP, "") {
		return bad("empty audience or azp")
	}
	for _, a := range c.Algorithms {
		if _, ok := algByName(a); !ok {
			return bad("algorithm %q is not allowed (allowed: %v; none and HS* never)", a, DefaultAlgorithms)
		}
	}
	switch {
	case c.MaxTokenBytes < 256 || c.MaxTokenBytes > 1<<20:
		return bad("max token size %d out of range 256..1048576", c.MaxTokenBytes)
	case c.Leeway > 5*time.Minute:
		return bad("leeway %s exceeds 5m", c.Leeway)
	case c.MinRefreshInterval < 0 || c.RefreshInterval < c.MinRefreshInterval:
		return bad("refresh interval %s must be >= min refresh interval %s", c.RefreshInterval, c.MinRefreshInterval)
	case c.MaxStale < c.RefreshInterval:
		return bad("max stale %s must be >= refresh interval %s", c.MaxStale, c.RefreshInterval)
	case c.FetchTimeout <= 0:
		return bad("fetch timeout must be positive")
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not carry credentials, a query or a fragment")
	}
	return nil
}

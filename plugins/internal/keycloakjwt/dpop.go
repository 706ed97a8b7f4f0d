package keycloakjwt

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/logthrottle"
	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
	"github.com/edgeguard/edgeguard/plugins/internal/secretfile"
)

// localReplay is the process's in-process replay store: one for every
// configuration, since a proof accepted on one route must not be accepted
// on another (jti is unique per key, not per route). Built on first use.
var localReplay = sync.OnceValue(func() *dpop.LocalStore { return dpop.NewLocalStore(dpop.DefaultLocalEntries, nil) })

// dpopCheck is the provisioned DPoP check of a configuration.
type dpopCheck struct {
	verifier *dpop.Verifier
	base     string // dpop_public_base_url, without a trailing slash
	nonces   *dpop.Nonces
}

// provisionDPoP builds the DPoP check of c (nil without
// dpop_public_base_url: bound tokens are then refused, dpop_not_configured).
func (c *Config) provisionDPoP(log zerolog.Logger) (*dpopCheck, []string, error) {
	set := c.DPoPPublicBaseURL != "" || len(c.DPoPAlgorithms) > 0 || c.DPoPWindowSeconds != 0 || c.DPoPRequireNonce ||
		c.DPoPNonceKeyFile != "" || c.DPoPNonceLifetimeSeconds != 0 || c.DPoPRedis.Set() || c.DPoPRedisTimeoutMS != 0 || c.DPoPOnRedisError != ""
	algs := c.DPoPAlgorithms
	if len(algs) == 0 {
		algs = dpop.DefaultAlgorithms
	}
	if c.DPoPPublicBaseURL == "" {
		switch {
		case c.RequireDPoP:
			return nil, nil, fmt.Errorf("require_dpop needs dpop_public_base_url")
		case set:
			return nil, nil, fmt.Errorf("the dpop_* options need dpop_public_base_url")
		}
		return nil, algs, nil
	}
	base, err := publicBaseURL(c.DPoPPublicBaseURL)
	if err != nil {
		return nil, nil, err
	}
	if c.DPoPWindowSeconds < 0 || c.DPoPNonceLifetimeSeconds < 0 || c.DPoPRedisTimeoutMS < 0 {
		return nil, nil, fmt.Errorf("dpop durations must not be negative")
	}
	throttle := &logthrottle.Throttle{Interval: 10 * time.Second}
	guard := &dpop.ReplayGuard{
		Local:   localReplay(),
		OnError: c.DPoPOnRedisError,
		Timeout: time.Duration(c.DPoPRedisTimeoutMS) * time.Millisecond,
		Failed: func(err error) {
			if held, ok := throttle.Allow(time.Now()); ok {
				log.Warn().Err(err).Uint64("suppressed", held).Str("policy", policyOf(c.DPoPOnRedisError)).
					Msg("dpop replay store (Redis) unavailable")
			}
		},
	}
	if err := guard.Validate(); err != nil {
		return nil, nil, fmt.Errorf("dpop_on_redis_error / dpop_redis_timeout_ms: %w", err)
	}
	if c.DPoPRedis.Set() {
		cl, err := redisconf.Client(c.DPoPRedis)
		if err != nil {
			return nil, nil, fmt.Errorf("dpop_redis: %w", err)
		}
		guard.Shared = &dpop.RedisStore{Client: cl}
	} else if c.DPoPOnRedisError != "" {
		return nil, nil, fmt.Errorf("dpop_on_redis_error needs dpop_redis")
	}
	d := &dpopCheck{base: base}
	switch {
	case c.DPoPRequireNonce:
		key, err := secretfile.ReadSecretFile("dpop_nonce_key_file", c.DPoPNonceKeyFile, dpop.MinNonceKeyBytes)
		if err != nil {
			return nil, nil, err
		}
		if key == "" {
			return nil, nil, fmt.Errorf("dpop_require_nonce needs dpop_nonce_key_file (a secret shared by every edge node)")
		}
		if d.nonces, err = dpop.NewNonces([]byte(key), time.Duration(c.DPoPNonceLifetimeSeconds)*time.Second, nil); err != nil {
			return nil, nil, err
		}
	case c.DPoPNonceKeyFile != "" || c.DPoPNonceLifetimeSeconds != 0:
		return nil, nil, fmt.Errorf("dpop_nonce_key_file and dpop_nonce_lifetime_seconds go with dpop_require_nonce")
	}
	d.verifier, err = dpop.New(dpop.Config{
		Algorithms: c.DPoPAlgorithms,
		Window:     time.Duration(c.DPoPWindowSeconds) * time.Second,
		Replay:     guard,
		Nonces:     d.nonces,
	})
	if err != nil {
		return nil, nil, err
	}
	return d, d.verifier.Algorithms(), nil
}

func policyOf(p string) string {
	if p == "" {
		return dpop.OnErrorLocal
	}
	return p
}

// publicBaseURL validates dpop_public_base_url: an absolute http(s) URL
// without credentials, query or fragment, whose path (a prefix the
// balancer removes, if any) is clean; returned without a trailing slash.
func publicBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("dpop_public_base_url %q: %s", s, why)
	}
	switch {
	case err != nil:
		return bad("not a URL")
	case (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return bad("not an absolute http(s) URL")
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return bad("must not carry credentials, a query or a fragment")
	case u.RawPath != "" || strings.ContainsAny(u.Path, "%;"):
		return bad("its path must be plain")
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p != "" && path.Clean(p) != p {
		return bad("its path must be clean")
	}
	if _, ok := dpop.NormalizeURL(u.Scheme + "://" + u.Host + p); !ok {
		return bad("not an absolute http(s) URL")
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + p, nil
}

// checkBinding decides a verified token's binding against how it came:
// with Authorization: DPoP its proof must be valid; a bound token as a
// bearer token is a downgrade; a plain bearer token where require_dpop is
// set is refused.
func (a *Authenticator) checkBinding(r *pipeline.Request, c credential, id *identity.Identity) pipeline.Result {
	switch {
	case c.dpop && id.Cnf == nil:
		return a.refuse(dpop.ReasonTokenUnbound)
	case c.dpop:
		return a.checkProof(r, c, id)
	case id.Cnf != nil:
		return a.refuse(dpop.ReasonDowngrade)
	case a.requireDPoP:
		return a.refuse(dpop.ReasonRequired)
	}
	return pipeline.Next
}

// checkProof verifies the request's one DPoP proof for the bound token id.
func (a *Authenticator) checkProof(r *pipeline.Request, c credential, id *identity.Identity) pipeline.Result {
	d := a.dpop
	switch {
	case d == nil:
		return a.refuse(dpop.ReasonNotConfigured)
	case len(c.proofs) == 0:
		return a.refuse(dpop.ReasonProofMissing)
	case len(c.proofs) > 1:
		return a.refuse(dpop.ReasonProofMultiple)
	}
	err := d.verifier.Verify(context.Background(), c.proofs[0], dpop.Request{
		Method:      r.Method(),
		URL:         d.base + r.Path(),
		AccessToken: c.token,
		JKT:         id.Cnf.JKT,
	})
	if err != nil {
		reason := dpop.ReasonOf(err)
		if reason == "" {
			reason = dpop.ReasonReplayUnavailable // not a refusal of the proof: never let it through
		}
		return a.refuse(reason)
	}
	if d.nonces != nil {
		r.SetResponseHeader(dpop.HeaderNonce, d.nonces.Issue())
	}
	return pipeline.Next
}

// refuse answers a DPoP refusal: 401 (503 for the replay store under the
// deny policy) with its reason and the DPoP challenge (a fresh nonce with
// use_dpop_nonce).
func (a *Authenticator) refuse(reason dpop.Reason) pipeline.Result {
	if reason.Status() != http.StatusUnauthorized {
		return pipeline.Deny(reason.Status(), string(reason), "DPoP proofs cannot be checked", map[string]string{"Retry-After": "5"})
	}
	h := map[string]string{"WWW-Authenticate": dpop.Challenge(auth.Realm, reason.ErrorAttr(), a.dpopAlgs)}
	if reason.ErrorAttr() == dpop.ErrorUseNonce && a.dpop != nil && a.dpop.nonces != nil {
		h[dpop.HeaderNonce] = a.dpop.nonces.Issue()
	}
	msg := "invalid DPoP proof"
	switch reason.ErrorAttr() {
	case dpop.ErrorInvalidToken:
		msg = "invalid token"
	case dpop.ErrorUseNonce:
		msg = "DPoP nonce required"
	}
	return pipeline.Deny(http.StatusUnauthorized, string(reason), msg, h)
}

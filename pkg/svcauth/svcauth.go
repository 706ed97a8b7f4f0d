// Package svcauth reads a private service's authentication settings
// (AUTH_*, SERVICE_NAME, EDGE_IDENTITY_JWKS_FILE) and builds the credential
// chain of its authenticated routes: the edge's X-Edge-Identity assertion
// first, then, with AUTH_ACCEPT_JWT, a Keycloak access token verified in the
// service. The first credential present decides.
package svcauth

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/rs/zerolog"
)

// Config is what Read returns.
type Config struct {
	// Enabled (AUTH_ENABLED, default true; only services that offer the
	// switch, and never in strict mode) turns authentication off.
	Enabled bool
	// AcceptJWT (AUTH_ACCEPT_JWT) accepts a Keycloak access token verified
	// here: Issuer (AUTH_ISSUER, required then), Audience (AUTH_AUDIENCE,
	// default jan-api), JWKSURL (AUTH_JWKS_URL, default the issuer's
	// certs endpoint), AllowedAZP (AUTH_ALLOWED_AZP, default
	// jan-cli,jan-agent,jan-web,guest-login).
	AcceptJWT  bool
	Issuer     string
	Audience   []string
	JWKSURL    string
	AllowedAZP []string
	// ServiceName (SERVICE_NAME) is the aud of accepted assertions.
	ServiceName string
	// EdgeIdentityJWKSFile (EDGE_IDENTITY_JWKS_FILE) holds the edge's
	// Ed25519 public keys; EdgeIdentityJWKS is its content.
	EdgeIdentityJWKSFile string
	EdgeIdentityJWKS     []byte
}

// Options are what differ between the services.
type Options struct {
	// ServiceName is SERVICE_NAME's default.
	ServiceName string
	// AcceptJWT is AUTH_ACCEPT_JWT's default.
	AcceptJWT bool
	// Switchable offers AUTH_ENABLED (false only outside strict mode).
	Switchable bool
	// JWTOnlyInStrict lets strict mode run with AUTH_ACCEPT_JWT and no
	// EDGE_IDENTITY_JWKS_FILE; otherwise strict mode requires the file.
	JWTOnlyInStrict bool
}

// Read reads the variables through l (its Strict set, see envconf.Service).
// Every fault is reported (errors.Join), each starting with its variable's
// name and never carrying a value read from a file; an unreadable switch
// counts as its default for the checks after it.
func Read(l *envconf.Loader, o Options) (Config, error) {
	c := Config{Enabled: true}
	var f envconf.Faults
	if o.Switchable {
		enabled, err := l.Bool("AUTH_ENABLED", true)
		if f.Add(err) {
			c.Enabled = enabled
		}
		if !c.Enabled && l.Strict {
			f.Add(errors.New("AUTH_ENABLED: cannot be false in strict mode"))
		}
	}
	accept, err := l.Bool("AUTH_ACCEPT_JWT", o.AcceptJWT)
	c.AcceptJWT = o.AcceptJWT
	if f.Add(err) {
		c.AcceptJWT = accept
	}
	c.Issuer = l.Str("AUTH_ISSUER", "")
	c.Audience = l.List("AUTH_AUDIENCE", []string{"jan-api"})
	c.JWKSURL = l.Str("AUTH_JWKS_URL", "")
	c.AllowedAZP = l.List("AUTH_ALLOWED_AZP", []string{"jan-cli", "jan-agent", "jan-web", "guest-login"})
	if c.Enabled && c.AcceptJWT {
		if c.Issuer == "" {
			f.Add(errors.New("AUTH_ISSUER: required when AUTH_ACCEPT_JWT is true"))
		} else if err := envconf.HTTPURL(c.Issuer); err != nil {
			f.Add(fmt.Errorf("AUTH_ISSUER: %w", err))
		}
		if c.JWKSURL != "" {
			if err := envconf.HTTPURL(c.JWKSURL); err != nil {
				f.Add(fmt.Errorf("AUTH_JWKS_URL: %w", err))
			}
		}
	}

	c.ServiceName = l.Str("SERVICE_NAME", o.ServiceName)
	aud := c.ServiceName // the audience the edge's keys are checked for
	if !envconf.ServiceName(c.ServiceName) {
		f.Add(fmt.Errorf("SERVICE_NAME: %q is not 1-64 characters of [a-z0-9-]", c.ServiceName))
		aud = o.ServiceName
	}
	c.EdgeIdentityJWKSFile = l.Str("EDGE_IDENTITY_JWKS_FILE", "")
	if c.EdgeIdentityJWKSFile == "" {
		switch {
		case !c.Enabled:
		case l.Strict && !o.JWTOnlyInStrict:
			f.Add(errors.New("EDGE_IDENTITY_JWKS_FILE: required in strict mode (the edge's public keys for X-Edge-Identity)"))
		case !c.AcceptJWT:
			f.Add(errors.New("EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT is true (no credential would be accepted)"))
		}
		return c, f.Err()
	}
	b, err := l.ReadFile(c.EdgeIdentityJWKSFile)
	switch {
	case err != nil:
		f.Add(fmt.Errorf("EDGE_IDENTITY_JWKS_FILE: cannot read %s", c.EdgeIdentityJWKSFile))
	case len(bytes.TrimSpace(b)) == 0:
		f.Add(fmt.Errorf("EDGE_IDENTITY_JWKS_FILE: %s is empty", c.EdgeIdentityJWKSFile))
	default:
		if _, err := edgeid.NewVerifier(b, aud, nil); err != nil {
			f.Add(fmt.Errorf("EDGE_IDENTITY_JWKS_FILE: %s is not a JWKS of Ed25519 public keys", c.EdgeIdentityJWKSFile))
		} else {
			c.EdgeIdentityJWKS = b
		}
	}
	return c, f.Err()
}

// Authenticator builds the chain. jwt replaces the verifier built from
// AUTH_* (tests); when it is nil and AUTH_ACCEPT_JWT holds, the verifier
// built here is returned for the caller to Close. now is the assertion
// clock (nil: time.Now).
func (c Config) Authenticator(jwt edgehttp.Verifier, now func() time.Time, log zerolog.Logger) (edgehttp.Chain, *jwtauth.Verifier, error) {
	var chain edgehttp.Chain
	if len(c.EdgeIdentityJWKS) > 0 {
		ev, err := edgeid.NewVerifier(c.EdgeIdentityJWKS, c.ServiceName, now)
		if err != nil {
			return nil, nil, fmt.Errorf("EDGE_IDENTITY_JWKS_FILE: %w", err)
		}
		chain = append(chain, &edgehttp.EdgeIdentity{Verifier: ev})
	}
	var built *jwtauth.Verifier
	if c.AcceptJWT {
		if jwt == nil {
			var err error
			built, err = jwtauth.New(jwtauth.Config{
				Issuers:    []jwtauth.Issuer{{Issuer: c.Issuer, JWKSURL: c.JWKSURL}},
				Audiences:  c.Audience,
				AllowedAZP: c.AllowedAZP,
				Logger:     log.With().Str("component", "jwtauth").Logger(),
			})
			if err != nil {
				return nil, nil, fmt.Errorf("AUTH_ISSUER/AUTH_AUDIENCE/AUTH_JWKS_URL: %w", err)
			}
			jwt = built
		}
		chain = append(chain, &edgehttp.JWT{Verifier: jwt})
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT is true (no credential would be accepted)")
	}
	log.Info().Bool("edge_identity", len(c.EdgeIdentityJWKS) > 0).Str("service_name", c.ServiceName).
		Bool("jwt", c.AcceptJWT).Msg("credentials accepted")
	return chain, built, nil
}

// Package edgeassert adds the edge-signed identity assertion
// (X-Edge-Identity, package pkg/edgeid) to requests the auth plugins
// authenticate: the identity, bound to the upstream, method and path, and
// the client address the edge decided (claim cip: Kong's
// kong.client.get_forwarded_ip), which services use for limits, audit and
// logs on authenticated routes. Both keycloak-jwt and keycloak-apikey
// configure it with the same two options: upstream_name (the assertion's
// aud) and edge_signing_key_file, which is checked for a change every
// KeyCheckInterval: a rotated key applies without restarting the plugin
// server.
package edgeassert

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// Asserter signs assertions for one upstream. A nil Asserter adds nothing.
type Asserter struct {
	key *keyFile // the current signer, re-read when the file changes
	aud string
	now func() time.Time
}

// New returns the Asserter of the two options: both set, or neither (nil).
func New(upstreamName, signingKeyFile string) (*Asserter, error) {
	switch {
	case upstreamName == "" && signingKeyFile == "":
		return nil, nil
	case upstreamName == "" || signingKeyFile == "":
		return nil, errors.New("upstream_name and edge_signing_key_file go together")
	}
	kf, err := loadKeyFile(signingKeyFile)
	if err != nil {
		return nil, fmt.Errorf("edge_signing_key_file: %w", err)
	}
	return &Asserter{key: kf, aud: upstreamName, now: time.Now}, nil
}

// Add sets X-Edge-Identity upstream for id, bound to the request's method
// and path, with the request's client address (ex.ClientIP: one
// kong.client.get_forwarded_ip call unless a plugin already read it; a
// value that is not an address is left out). An error means signing failed:
// the request must not go on without it (the admit stage answers 500).
func (a *Asserter) Add(ex exchange.Exchange, id *identity.Identity) error {
	if a == nil {
		return nil
	}
	client, _ := netip.ParseAddr(ex.ClientIP())
	v, err := a.key.cur.Load().SignClient(id, a.aud, ex.Method(), ex.Path(), client, a.now())
	if err != nil {
		return fmt.Errorf("sign the edge assertion: %w", err)
	}
	ex.SetUpstreamHeader(identity.HeaderEdgeIdentity, v)
	return nil
}

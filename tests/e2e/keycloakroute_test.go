package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestKeycloakRouteAnswersOnlyThePublicHost: Keycloak builds its discovery
// document's backchannel endpoints from the request's Host
// (--hostname-backchannel-dynamic, and the route preserves the Host), so the
// gateway routes Keycloak's paths only for the public host (kong.yml
// hosts: [localhost]); any other Host gets Kong's 404.
func TestKeycloakRouteAnswersOnlyThePublicHost(t *testing.T) {
	_, e := requireEdge(t)
	const discovery = "/realms/jan/.well-known/openid-configuration"
	if a := e.do(t, http.MethodGet, discovery, "", nil, http.Header{"Host": {e.publicHost()}}); a.status != http.StatusOK {
		t.Fatalf("discovery with the public Host %s: %d", e.publicHost(), a.status)
	}
	gw, _ := url.Parse(e.gw)
	for _, host := range []string{"evil.example", "evil.example:" + gw.Port(), gw.Host} {
		for _, path := range []string{discovery, "/realms/jan/protocol/openid-connect/certs", "/resources/x"} {
			a := e.do(t, http.MethodGet, path, "", nil, http.Header{"Host": {host}})
			if a.status != http.StatusNotFound || !strings.Contains(string(a.body), "no Route matched") {
				t.Errorf("GET %s with Host %s: %d %.120s, want Kong's 404 (no route)", path, host, a.status, a.body)
			}
		}
	}
}

// TestKeycloakLogsTheClientAddress: Keycloak (--proxy-headers=xforwarded)
// takes the leftmost X-Forwarded-For entry as the client address of its
// events (and of its HTTPS-required decision), so it relies on the edge
// handing it one address, the client's, and trusts proxy headers only from
// the gateway (--proxy-trusted-addresses). A token request that Keycloak
// refuses (a password grant on jan-cli: LOGIN_ERROR not_allowed) carries a
// forged leftmost entry; the event records the client's address: the
// rightmost untrusted one behind Kong's trusted peer, the peer itself
// through Kong, or the peer itself directly at Keycloak.
// Private addresses, since Keycloak requires HTTPS from public ones
// (sslRequired: external) and would log no event.
func TestKeycloakLogsTheClientAddress(t *testing.T) {
	s, e := requireEdge(t)
	tokenPath := "/realms/jan/protocol/openid-connect/token"
	form := url.Values{"grant_type": {"password"}, "client_id": {clientCLI}, "username": {"nobody-" + randHex(4)}, "password": {"x"}}

	check := func(t *testing.T, forged, want string, send func(xff string) answer) {
		t.Helper()
		if a := send(forged); a.status != http.StatusBadRequest && a.status != http.StatusUnauthorized {
			t.Fatalf("a password grant on %s through the gateway: %d %s", clientCLI, a.status, a.body)
		}
		var got string
		if !eventually(10*time.Second, func() bool {
			var events []struct {
				IPAddress string `json:"ipAddress"`
			}
			if _, err := s.kc.Admin(s.ctx, http.MethodGet, "/events?client="+clientCLI+"&type=LOGIN_ERROR&max=500", nil, &events); err != nil {
				t.Fatalf("reading Keycloak's events: %v", err)
			}
			for _, ev := range events {
				if ev.IPAddress == forged || ev.IPAddress == want {
					got = ev.IPAddress
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no LOGIN_ERROR event of %s with the address %s or %s", clientCLI, want, forged)
		}
		if got != want {
			t.Errorf("Keycloak's event has ipAddress %s (the client claimed it), want %s", got, want)
		}
	}
	t.Run("behind the trusted peer", func(t *testing.T) {
		forged, client := privateAddr(), privateAddr()
		check(t, forged, client, func(xff string) answer {
			return e.doForm(t, tokenPath, form, http.Header{"Host": {e.publicHost()}, "X-Forwarded-For": {xff + ", " + client}})
		})
	})
	t.Run("from an untrusted peer", func(t *testing.T) {
		peer := loopbackPeer()
		check(t, privateAddr(), peer, func(xff string) answer {
			return e.doFromForm(t, peer, e.gw+tokenPath, form, http.Header{"Host": {e.publicHost()}, "X-Forwarded-For": {xff}})
		})
	})
	// Keycloak itself believes proxy headers only from the gateway's
	// address (--proxy-trusted-addresses; here 127.0.0.1): a client that
	// reaches it from elsewhere cannot choose its address either.
	t.Run("directly at Keycloak from another address", func(t *testing.T) {
		peer := loopbackPeer()
		check(t, privateAddr(), peer, func(xff string) answer {
			return e.doFromForm(t, peer, s.env.URL+tokenPath, form, http.Header{"X-Forwarded-For": {xff}})
		})
	})
}

// privateAddr is a random address of 10.0.0.0/8.
func privateAddr() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("10.%d.%d.%d", b[0], b[1], 1+int(b[2])%254)
}

// doForm posts form to the gateway's path with extra headers.
func (e *edgeStack) doForm(t *testing.T, path string, form url.Values, extra http.Header) answer {
	t.Helper()
	return e.doFromForm(t, "127.0.0.1", e.gw+path, form, extra)
}

// doFromForm posts form to rawURL from the local address src.
func (e *edgeStack) doFromForm(t *testing.T, src, rawURL string, form url.Values, extra http.Header) answer {
	t.Helper()
	h := extra.Clone()
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.doFromBody(t, src, http.MethodPost, rawURL, h, strings.NewReader(form.Encode()))
}

package edgeassert

import (
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/plugintest"
)

func TestAddSignsForTheRequest(t *testing.T) {
	key, jwks := plugintest.EdgeKey(t)
	a, err := New("llm-api", key)
	if err != nil {
		t.Fatal(err)
	}
	f := exchange.NewFake("POST", "/v1/chat/completions", nil)
	if err := a.Add(f, &identity.Identity{Subject: "u", AuthMethod: "jwt"}); err != nil {
		t.Fatal("Add failed")
	}
	v, _ := edgeid.NewVerifier(jwks, "llm-api", time.Now)
	id, err := v.Verify(f.Upstream[identity.HeaderEdgeIdentity], "POST", "/v1/chat/completions")
	if err != nil || id.Subject != "u" {
		t.Fatalf("%v %v", id, err)
	}
	var none *Asserter
	if err := none.Add(f, &identity.Identity{Subject: "u"}); err != nil {
		t.Fatal("a nil Asserter adds nothing and lets the request on")
	}
}

// TestAddCarriesTheClientAddress: the assertion's cip is the client
// address of the request as the host decided it (Kong:
// kong.client.get_forwarded_ip), canonical; a host value that is not an
// address is left out, never passed on.
func TestAddCarriesTheClientAddress(t *testing.T) {
	key, jwks := plugintest.EdgeKey(t)
	a, err := New("llm-api", key)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := edgeid.NewVerifier(jwks, "llm-api", time.Now)
	for host, want := range map[string]string{
		"203.0.113.7": "203.0.113.7", "::ffff:203.0.113.7": "203.0.113.7", "2001:db8::7": "2001:db8::7",
		"": "", "unknown": "", "198.18.0.9, 203.0.113.7": "",
	} {
		f := exchange.NewFake("GET", "/v1/models", nil)
		f.ClientAddr = host
		if err := a.Add(f, &identity.Identity{Subject: "u", AuthMethod: "jwt"}); err != nil {
			t.Fatal("Add failed")
		}
		c, err := v.VerifyClaims(f.Upstream[identity.HeaderEdgeIdentity], "GET", "/v1/models")
		if err != nil {
			t.Fatalf("client %q: %v", host, err)
		}
		if c.Cip != want {
			t.Errorf("client %q: cip %q, want %q", host, c.Cip, want)
		}
	}
}

func TestOptionsGoTogether(t *testing.T) {
	key, _ := plugintest.EdgeKey(t)
	for _, tc := range [][2]string{{"llm-api", ""}, {"", key}, {"llm-api", "/nope.pem"}} {
		if _, err := New(tc[0], tc[1]); err == nil {
			t.Errorf("New(%q, %q) accepted", tc[0], tc[1])
		}
	}
	if a, err := New("", ""); a != nil || err != nil {
		t.Fatal("neither option: no asserter, no error")
	}
}

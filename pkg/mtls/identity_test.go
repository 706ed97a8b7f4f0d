package mtls_test

import (
	"crypto/x509"
	"net/url"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/mtls"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		in, want string
		uri      bool
		bad      bool
	}{
		{in: "spiffe://edgeguard/edge", want: "spiffe://edgeguard/edge", uri: true},
		{in: " SPIFFE://EdgeGuard/Edge ", want: "spiffe://edgeguard/Edge", uri: true}, // the path keeps its case
		{in: "spiffe://cluster.local/ns/edge/sa/kong", want: "spiffe://cluster.local/ns/edge/sa/kong", uri: true},
		{in: "edgeguard-edge", want: "edgeguard-edge"},
		{in: "Kong.Edge.svc.", want: "kong.edge.svc"},
		{in: "spiffe:///edge", bad: true},
		{in: "spiffe://edgeguard/edge?x=1", bad: true},
		{in: "spiffe://edgeguard/edge#f", bad: true},
		{in: "spiffe://u@edgeguard/edge", bad: true},
		{in: "*.edge", bad: true},
		{in: "edge_guard", bad: true},
		{in: "-edge", bad: true},
		{in: "", bad: true},
		{in: "a..b", bad: true},
	}
	for _, tt := range tests {
		id, err := mtls.ParseIdentity(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q accepted as %v", tt.in, id)
			}
			continue
		}
		if err != nil || id.String() != tt.want || id.IsURI() != tt.uri {
			t.Errorf("%q: %v %v (uri %v); want %q uri %v", tt.in, id, err, id.IsURI(), tt.want, tt.uri)
		}
	}
}

func TestIdentityMatchesOnlyItsKindOfSAN(t *testing.T) {
	u, _ := url.Parse("spiffe://EDGEGUARD/edge")
	cert := &x509.Certificate{URIs: []*url.URL{u}, DNSNames: []string{"EdgeGuard-Edge"}}
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"spiffe://edgeguard/edge", true},
		{"spiffe://edgeguard/Edge", false},
		{"spiffe://edgeguard/edge/", false},
		{"edgeguard-edge", true},
		{"edgeguard", false},
	} {
		id, err := mtls.ParseIdentity(tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if got := id.Matches(cert); got != tt.want {
			t.Errorf("%s matches: %v, want %v", tt.id, got, tt.want)
		}
	}
	if err := mtls.CheckPeer(nil, nil); err == nil {
		t.Error("no certificate accepted")
	}
}

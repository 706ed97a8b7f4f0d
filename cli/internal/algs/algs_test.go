package algs

import (
	"slices"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
		ok   bool
	}{
		{nil, jwtauth.DefaultAlgorithms, true},
		{[]string{""}, jwtauth.DefaultAlgorithms, true},
		{[]string{"ES256", " EdDSA ", "ES256"}, []string{"ES256", "EdDSA"}, true},
		{[]string{"none"}, nil, false},
		{[]string{"HS256"}, nil, false},
		{[]string{"RS256", "hs512"}, nil, false},
		{[]string{"rs256"}, nil, false}, // names are case-sensitive (RFC 7518)
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("Parse(%q) = %q, %v", tt.in, got, err)
		}
	}
}

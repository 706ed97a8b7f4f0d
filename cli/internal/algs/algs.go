// Package algs parses the --alg flag: a JWS algorithm allowlist, checked
// against what pkg/jwtauth can ever accept. "none" and the HMAC algorithms
// are refused here, as a usage error, before any token is looked at.
package algs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// Parse validates names (already split on commas) and returns them; an empty
// list means jwtauth.DefaultAlgorithms.
func Parse(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(jwtauth.DefaultAlgorithms, n) {
			return nil, fmt.Errorf("--alg %q is not allowed (allowed: %s; none and HS* never)", n, strings.Join(jwtauth.DefaultAlgorithms, ","))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return slices.Clone(jwtauth.DefaultAlgorithms), nil
	}
	return out, nil
}

// Package jwksfile loads a JWKS from a local file for offline verification
// (edgectl jws verify, edgectl token verify --jwks FILE), with the key rules
// of pkg/jwtauth.
//
// It reports, without ever printing them, whether the file holds private key
// members: a verifier only needs public keys, and a JWKS with "d" in it
// handed to services is a leaked signing key.
package jwksfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// MaxBytes bounds the file read (the same bound jwtauth puts on a fetched
// JWKS).
const MaxBytes = 1 << 20

// ErrTooLarge is returned for a file larger than MaxBytes.
var ErrTooLarge = errors.New("jwks file exceeds 1 MiB")

// Set is a loaded JWKS.
type Set struct {
	Keys *jwtauth.StaticKeys
	// Private is set when some key carries private members (d, p, q, dp, dq,
	// qi, k). Their values are never kept or printed.
	Private bool
}

// Load reads and parses the JWKS file at path. Errors name the file and
// jwtauth's reason (skipped key kinds, kids); they never carry key material.
func Load(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwks file: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", path, err)
	}
	if len(doc) > MaxBytes {
		return nil, fmt.Errorf("jwks file %s: %w", path, ErrTooLarge)
	}
	keys, err := jwtauth.ParseJWKS(doc)
	if err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", path, err)
	}
	return &Set{Keys: keys, Private: hasPrivate(doc)}, nil
}

// WarnPrivate writes the warning for a file holding private members (never
// their values).
func WarnPrivate(w io.Writer, path string) {
	fmt.Fprintf(w, "edgectl: warning: %s holds private key members; a verifier needs only the public keys\n", path)
}

// privateMembers are the JWK members of private or symmetric keys (RFC 7518
// §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

func hasPrivate(doc []byte) bool {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return false
	}
	keys := []map[string]json.RawMessage{top} // a single JWK
	if raw, ok := top["keys"]; ok {
		keys = nil
		_ = json.Unmarshal(raw, &keys)
	}
	for _, k := range keys {
		for _, m := range privateMembers {
			if _, ok := k[m]; ok {
				return true
			}
		}
	}
	return false
}

// Package jwscmd is "edgectl jws": offline checks of JWS signatures.
//
// "jws verify" checks only the signature of a compact JWS against a JWKS
// file, under pkg/jwtauth's algorithm and key rules (allowlist, no none/HS*,
// no jku/x5u/jwk/x5c/crit, header typ JWT or at+jwt, the key of kid, alg that
// fits the key). It checks no claim — the payload may even be empty (RFC
// 7515: a JWS over zero bytes) —: use "edgectl token verify" for that.
package jwscmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/algs"
	"github.com/edgeguard/edgeguard/cli/internal/jwksfile"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/tokenin"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// Result is the JSON line "jws verify" prints. Reason is omitted when the
// signature is valid; KID and Alg are omitted when the header did not yield
// them (Alg is only ever one of the algorithms jwtauth knows, so a header
// saying "none" or "HS256" shows no alg).
type Result struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
	KID    string `json:"kid,omitempty"`
	Alg    string `json:"alg,omitempty"`
}

// maxKIDOut bounds the kid echoed back (jwtauth rejects longer kids).
const maxKIDOut = 256

// New returns the "jws" command with its subcommands.
func New() *cobra.Command {
	c := &cobra.Command{
		Use:   "jws",
		Short: "Check JWS signatures offline",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return errors.New("jws: missing subcommand (verify)")
		},
	}
	c.AddCommand(newVerify())
	return c
}

func newVerify() *cobra.Command {
	var (
		jwksPath string
		algList  []string
	)
	c := &cobra.Command{
		Use:   "verify --jwks FILE [--alg LIST] TOKEN|-",
		Short: "Verify only the signature of a compact JWS against a JWKS file",
		Long: `Verify only the signature of a compact JWS against a JWKS file, under the
algorithm and key rules of the edge (pkg/jwtauth). No claim is checked.

Prints one JSON line {"valid":bool,"reason":"<code>","kid":"...","alg":"..."}
(reason omitted when valid). Exit 0 valid, 1 invalid, 2 usage error.
Pass "-" to read the token from stdin (keeps it out of shell history).`,
		Example: `  edgectl jws verify --jwks realm-jwks.json - < token.txt
  printf '%s' "$TOKEN" | edgectl jws verify --jwks realm-jwks.json --alg RS256 -`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			allowed, err := algs.Parse(algList)
			if err != nil {
				return err
			}
			if jwksPath == "" {
				return errors.New("--jwks FILE is required")
			}
			set, err := jwksfile.Load(jwksPath)
			if err != nil {
				return err
			}
			if set.Private {
				jwksfile.WarnPrivate(c.ErrOrStderr(), jwksPath)
			}
			tok, err := tokenin.Read(args[0], c.InOrStdin())
			if errors.Is(err, tokenin.ErrTooLarge) {
				return outcome.Verdict(c.OutOrStdout(), false, Result{Reason: string(jwtauth.ReasonTooLarge)})
			}
			if err != nil {
				return err
			}
			ok, res := Verify(set.Keys, tok, allowed)
			return outcome.Verdict(c.OutOrStdout(), ok, res)
		},
	}
	f := c.Flags()
	f.StringVar(&jwksPath, "jwks", "", "JWKS file with the verification keys (required)")
	f.StringSliceVar(&algList, "alg", nil, "allowed algorithms, comma-separated or repeated (default: "+fmt.Sprint(jwtauth.DefaultAlgorithms)+")")
	return c
}

// Verify checks the signature of tok and returns whether it is valid and
// the result to print.
func Verify(keys *jwtauth.StaticKeys, tok string, allowed []string) (bool, Result) {
	info, reason := keys.VerifySignature(tok, allowed)
	r := Result{Valid: reason == "", Reason: string(reason), Alg: info.Alg}
	if len(info.KID) <= maxKIDOut {
		r.KID = info.KID
	}
	return r.Valid, r
}

// Package tokencmd is "edgectl token": the session's access token for
// scripts, and checks of Keycloak access tokens.
//
// "token" prints a fresh access token of the stored session (refreshed when
// it expires within 30 s, or at once with --refresh) on stdout and nothing
// else: it is the only edgectl command that prints a token. "token proof"
// prints a DPoP proof of a DPoP-bound session's key for one request, for
// scripts that send the token themselves. "token verify" runs the edge's full verification (pkg/jwtauth: signature,
// issuer, expiry with leeway, audience, azp, token class) and prints the
// resulting identity. Keys come from a JWKS file, a JWKS URL, or OIDC
// discovery from the issuer. It never prints the token.
package tokencmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/algs"
	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/cli/internal/jwksfile"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
	"github.com/edgeguard/edgeguard/cli/internal/tokenin"
	"github.com/edgeguard/edgeguard/pkg/dpop"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// Result is the JSON line "token verify" prints: the identity when valid,
// the reason code otherwise.
type Result struct {
	Valid    bool               `json:"valid"`
	Reason   string             `json:"reason,omitempty"`
	Identity *identity.Identity `json:"identity,omitempty"`
}

// Defaults of the flags.
const (
	DefaultAudience = "jan-api"
	DefaultTimeout  = 10 * time.Second
	// minRefresh is how often a CLI run may retry a failed JWKS fetch while
	// it waits (the edge's 10 s would allow a single attempt).
	minRefresh = time.Second
)

// Options are the injectable dependencies of the command (tests).
type Options struct {
	Now     func() time.Time // nil: time.Now
	Session session.Options  // the stored session ("edgectl token")
}

// New returns the "token" command with its subcommands.
func New(o Options) *cobra.Command {
	var (
		server       string
		insecureHTTP bool
		refresh      bool
	)
	c := &cobra.Command{
		Use:   "token [--server URL] [--refresh] | token proof ... | token verify ...",
		Short: "Print a fresh access token of the session (for scripts); check access tokens",
		Long: `"edgectl token" prints the stored session's access token on stdout, followed by
a newline, and nothing else: it refreshes it first (with the refresh token,
re-verifying the new access token) when it expires within 30 s. It is the
only edgectl command that prints a token. --refresh refreshes it in any case.
Errors go to stderr: exit 1 when not logged in or the session has ended (run
edgectl login), 2 on a usage error.

A DPoP-bound session's token (edgectl login --dpop, or --client jan-agent)
goes in "Authorization: DPoP" with a proof of the session's key for each
request: "edgectl token proof" prints one.

"edgectl token verify" checks a token as the edge does.`,
		Example: `  curl -H "Authorization: Bearer $(edgectl token)" https://edge.example.com/v1/models

  # a DPoP-bound session
  TOKEN=$(edgectl token)
  PROOF=$(printf %s "$TOKEN" | edgectl token proof --method GET --url https://edge.example.com/v1/models -)
  curl -H "Authorization: DPoP $TOKEN" -H "DPoP: $PROOF" https://edge.example.com/v1/models`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			se, err := o.Session.Open()
			if err != nil {
				return err
			}
			se.AllowHTTP = insecureHTTP
			srv, err := se.Server(server)
			if err != nil {
				return err
			}
			var cr *credstore.Credentials
			if refresh {
				cr, err = se.Refresh(c.Context(), srv)
			} else {
				cr, _, err = se.Fresh(c.Context(), srv)
			}
			if err != nil {
				return outcome.Fail(err)
			}
			if _, err := io.WriteString(c.OutOrStdout(), string(cr.AccessToken)+"\n"); err != nil {
				return fmt.Errorf("write token: %w", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "the server (default $"+session.EnvServer+", else the last login)")
	c.Flags().BoolVar(&insecureHTTP, "insecure-http", false, "allow a plain http server on a non-loopback host")
	c.Flags().BoolVar(&refresh, "refresh", false, "refresh the session now, even if the access token is still valid")
	c.AddCommand(newVerify(o), newProof(o))
	return c
}

func newProof(o Options) *cobra.Command {
	var (
		server, method, rawURL, nonce string
		insecureHTTP                  bool
	)
	c := &cobra.Command{
		Use:   "proof --method METHOD --url URL [--nonce N] [--server URL] [TOKEN|-]",
		Short: "Print a DPoP proof of the session's key for one request (DPoP-bound sessions)",
		Long: `Print, on stdout, a DPoP proof (RFC 9449) of the stored session's key for
one request: htm METHOD, htu URL (its query and fragment dropped), a fresh
jti, iat now, and ath, the hash of the access token it goes with — TOKEN
(or "-": stdin) when given, else the session's current token (refreshed
first when it expires within 30 s, as "edgectl token" does). Give it the
token you send, so that both always match. A proof is good for one request,
within a minute; --nonce adds the server's DPoP-Nonce when it asks for one.

Exit 1 when not logged in or the session is not DPoP-bound, 2 on a usage
error.`,
		Example: `  TOKEN=$(edgectl token)
  curl -H "Authorization: DPoP $TOKEN" \
       -H "DPoP: $(printf %s "$TOKEN" | edgectl token proof --method POST --url https://edge.example.com/v1/chat/completions -)" \
       https://edge.example.com/v1/chat/completions -d @request.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if method == "" || rawURL == "" {
				return errors.New("--method and --url are required")
			}
			if strings.ToUpper(method) != method || strings.ContainsAny(method, " \t") {
				return errors.New("--method must be an upper-case HTTP method (GET, POST, …)")
			}
			u, err := url.Parse(rawURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
				return errors.New("--url must be an absolute http(s) URL without credentials")
			}
			se, err := o.Session.Open()
			if err != nil {
				return err
			}
			se.AllowHTTP = insecureHTTP
			srv, err := se.Server(server)
			if err != nil {
				return err
			}
			var token string
			if len(args) == 1 {
				if token, err = tokenin.Read(args[0], c.InOrStdin()); err != nil {
					return err
				}
			}
			cr, err := se.Load(srv)
			if err != nil {
				return outcome.Fail(err)
			}
			if token == "" {
				if cr, _, err = se.Fresh(c.Context(), srv); err != nil {
					return outcome.Fail(err)
				}
				token = string(cr.AccessToken)
			}
			key, err := session.DPoPKeyOf(cr)
			if err != nil {
				return outcome.Fail(err)
			}
			if key == nil {
				return outcome.Failf("the session with %s is not DPoP-bound: send its token as a bearer token (or log in with --dpop)", srv)
			}
			now := time.Now
			if se.Now != nil {
				now = se.Now
			}
			p, err := key.Proof(method, rawURL, dpop.ProofOptions{AccessToken: token, Nonce: nonce, Now: now()})
			if err != nil {
				return outcome.Fail(err)
			}
			if _, err := io.WriteString(c.OutOrStdout(), p+"\n"); err != nil {
				return fmt.Errorf("write proof: %w", err)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&method, "method", "", "the request's HTTP method (required)")
	f.StringVar(&rawURL, "url", "", "the request's URL as the client sends it (required; query and fragment are not part of the proof)")
	f.StringVar(&nonce, "nonce", "", "the server's DPoP-Nonce, when it asks for one")
	f.StringVar(&server, "server", "", "the server (default $"+session.EnvServer+", else the last login)")
	f.BoolVar(&insecureHTTP, "insecure-http", false, "allow a plain http server on a non-loopback host")
	return c
}

type verifyFlags struct {
	issuer    string
	jwks      string
	audiences []string
	azp       []string
	algs      []string
	leeway    time.Duration
	timeout   time.Duration
	verbose   bool
}

func newVerify(o Options) *cobra.Command {
	var fl verifyFlags
	c := &cobra.Command{
		Use:   "verify --issuer URL [--jwks FILE|URL] [--audience A]... [--azp LIST] [--alg LIST] [--leeway D] [--timeout D] TOKEN|-",
		Short: "Verify an access token as the edge does and print its identity",
		Long: `Verify an access token as the edge does (pkg/jwtauth): signature, issuer,
exp/nbf/iat with leeway, audience (any-of), azp, header and claim typ.

Keys: --jwks FILE (offline), --jwks URL, or, without --jwks, OIDC discovery
from <issuer>/.well-known/openid-configuration.

Prints one JSON line: {"valid":true,"identity":{...}} or
{"valid":false,"reason":"<code>"}. Exit 0 valid, 1 invalid (including
idp_unavailable), 2 usage error. Pass "-" to read the token from stdin.`,
		Example: `  edgectl token verify --issuer https://sso.example.com/realms/jan - < token.txt
  edgectl token verify --issuer https://sso.example.com/realms/jan --jwks jwks.json --azp jan-cli,jan-web -`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runVerify(c, o, fl, args[0])
		},
	}
	f := c.Flags()
	f.StringVar(&fl.issuer, "issuer", "", "expected iss, exact match (required)")
	f.StringVar(&fl.jwks, "jwks", "", "JWKS file, or http(s) URL of the JWKS (default: OIDC discovery from --issuer)")
	f.StringSliceVar(&fl.audiences, "audience", []string{DefaultAudience}, "accepted audiences, any-of; comma-separated or repeated")
	f.StringSliceVar(&fl.azp, "azp", nil, "accepted azp values, comma-separated (default: any)")
	f.StringSliceVar(&fl.algs, "alg", nil, "allowed algorithms, comma-separated (default: "+strings.Join(jwtauth.DefaultAlgorithms, ",")+")")
	f.DurationVar(&fl.leeway, "leeway", jwtauth.DefaultLeeway, "clock skew allowed on exp/nbf/iat (0: none, at most 5m)")
	f.DurationVar(&fl.timeout, "timeout", DefaultTimeout, "how long to wait for the keys (JWKS URL or discovery)")
	f.BoolVar(&fl.verbose, "verbose", false, "log key fetching to stderr (failures are logged regardless)")
	return c
}

func runVerify(c *cobra.Command, o Options, fl verifyFlags, arg string) error {
	cfg, err := config(c, o, fl)
	if err != nil {
		return err
	}
	log := &closingWriter{w: c.ErrOrStderr()}
	defer log.Close() // key-set goroutines may outlive the command: silence them
	level := zerolog.WarnLevel
	if fl.verbose {
		level = zerolog.InfoLevel
	}
	cfg.Logger = zerolog.New(zerolog.ConsoleWriter{Out: log, NoColor: true, TimeFormat: time.RFC3339}).
		Level(level).With().Timestamp().Str("component", "jwks").Logger()

	tok, err := tokenin.Read(arg, c.InOrStdin())
	if errors.Is(err, tokenin.ErrTooLarge) {
		return outcome.Verdict(c.OutOrStdout(), false, Result{Reason: string(jwtauth.ReasonTooLarge)})
	}
	if err != nil {
		return err
	}

	v, err := jwtauth.New(cfg)
	if err != nil {
		return err
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(c.Context(), fl.timeout)
	defer cancel()
	id, err := session.WaitVerify(ctx, v, tok)
	if err != nil {
		r := jwtauth.ReasonOf(err)
		if r == "" {
			return fmt.Errorf("verify: %w", err)
		}
		return outcome.Verdict(c.OutOrStdout(), false, Result{Reason: string(r)})
	}
	return outcome.Verdict(c.OutOrStdout(), true, Result{Valid: true, Identity: id})
}

// config builds the jwtauth configuration from the flags; its errors are
// usage errors.
func config(c *cobra.Command, o Options, fl verifyFlags) (jwtauth.Config, error) {
	if fl.issuer == "" {
		return jwtauth.Config{}, errors.New("--issuer URL is required")
	}
	allowed, err := algs.Parse(fl.algs)
	if err != nil {
		return jwtauth.Config{}, err
	}
	if fl.leeway < 0 {
		return jwtauth.Config{}, errors.New("--leeway must not be negative")
	}
	if fl.timeout <= 0 {
		return jwtauth.Config{}, errors.New("--timeout must be positive")
	}
	leeway := fl.leeway
	if leeway == 0 {
		leeway = -1 // jwtauth: negative means none, zero means the default
	}
	is := jwtauth.Issuer{Issuer: fl.issuer}
	switch {
	case strings.HasPrefix(fl.jwks, "https://") || strings.HasPrefix(fl.jwks, "http://"):
		is.JWKSURL = fl.jwks
	case fl.jwks != "":
		set, err := jwksfile.Load(fl.jwks)
		if err != nil {
			return jwtauth.Config{}, err
		}
		if set.Private {
			jwksfile.WarnPrivate(c.ErrOrStderr(), fl.jwks)
		}
		is.Keys = set.Keys
	}
	cfg := jwtauth.Config{
		Issuers:            []jwtauth.Issuer{is},
		Audiences:          trimAll(fl.audiences),
		AllowedAZP:         trimAll(fl.azp),
		Algorithms:         allowed,
		Leeway:             leeway,
		MinRefreshInterval: minRefresh,
		FetchTimeout:       min(jwtauth.DefaultFetchTimeout, fl.timeout),
		CacheEntries:       -1, // one token per run
		Now:                o.Now,
	}
	return cfg, nil
}

func trimAll(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// closingWriter forwards writes until Close, then drops them, so that
// goroutines outliving the command never write to a stderr its caller has
// moved on from.
type closingWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (c *closingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(p), nil
	}
	return c.w.Write(p)
}

func (c *closingWriter) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

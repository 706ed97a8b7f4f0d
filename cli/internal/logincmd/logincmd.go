// Package logincmd is edgectl's session commands: "login" (the OAuth 2.0
// device flow against the realm's public CLI client), "logout" (revoke the
// refresh token, delete the stored credentials) and "whoami" (who the
// stored, verified token says you are).
//
// None of them prints a token: "edgectl token" (package tokencmd) is the only
// command that does.
package logincmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/cli/internal/deviceflow"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
	"github.com/edgeguard/edgeguard/pkg/dpop"
)

// New returns the login, logout and whoami commands.
func New(o session.Options) []*cobra.Command {
	return []*cobra.Command{newLogin(o), newLogout(o), newWhoami(o)}
}

type loginFlags struct {
	server, realm, client, scope string
	insecureHTTP                 bool
	dpop                         bool
	dpopSet                      bool // --dpop given (else: on for jan-agent, and wherever the server demands a proof)
}

func newLogin(o session.Options) *cobra.Command {
	var fl loginFlags
	c := &cobra.Command{
		Use:   "login [--server URL] [--realm jan] [--client jan-cli]",
		Short: "Log in with the OAuth 2.0 device flow and store the session",
		Long: `Log in with the OAuth 2.0 Device Authorization Grant (RFC 8628).

edgectl discovers the realm's endpoints from
<server>/realms/<realm>/.well-known/openid-configuration, prints a URL and a
code to open in any browser, and polls until you approve (or refuse) there.
The access token is verified as the edge verifies it (signature against the
realm's JWKS, issuer, audience jan-api, azp = the client) before the session
is stored, encrypted, under your config directory (see "edgectl doctor").

--dpop binds the session's tokens to a P-256 key edgectl generates and
stores with them (DPoP, RFC 9449): every token, refresh and API request
then carries a proof of it, so a copied token is useless without the key.
Default: on with --client jan-agent (the realm requires it), and on when the
server asks for a proof; --dpop=false never sends one.

Exit 0 logged in, 1 refused (access_denied), expired, cancelled or failed,
2 usage error.`,
		Example: `  edgectl login --server https://edge.example.com
  edgectl login --server https://edge.example.com --dpop
  edgectl login --server https://edge.example.com --client jan-agent   # DPoP-bound tokens only
  EDGEGUARD_SERVER=http://localhost:8000 edgectl login`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fl.dpopSet = c.Flags().Changed("dpop")
			return runLogin(c, o, fl)
		},
	}
	f := c.Flags()
	f.StringVar(&fl.server, "server", "", "the deployment's public URL: the gateway, or Keycloak itself (default $"+session.EnvServer+", else the last login)")
	f.StringVar(&fl.realm, "realm", session.DefaultRealm, "Keycloak realm")
	f.StringVar(&fl.client, "client", session.DefaultClient, "public OAuth client with the device grant")
	f.StringVar(&fl.scope, "scope", "", "extra OAuth scopes to request (space-separated; default: the client's default scopes)")
	f.BoolVar(&fl.insecureHTTP, "insecure-http", false, "allow plain http to a non-loopback host (tokens travel in clear)")
	f.BoolVar(&fl.dpop, "dpop", false, "bind the tokens to a key of this session (DPoP); default: on for "+session.AgentClient+" and when the server requires it")
	return c
}

func runLogin(c *cobra.Command, o session.Options, fl loginFlags) error {
	se, err := o.Open()
	if err != nil {
		return err
	}
	se.AllowHTTP = fl.insecureHTTP
	server, err := se.Server(fl.server)
	if err != nil {
		return err
	}
	if fl.client == "" || fl.realm == "" {
		return errors.New("--realm and --client must not be empty")
	}
	ctx := c.Context()
	out := c.OutOrStdout()

	prov, err := deviceflow.Discover(ctx, se.HTTPClient(), server, fl.realm, fl.insecureHTTP)
	if err != nil {
		return outcome.Fail(err)
	}
	cl := &deviceflow.Client{
		HTTP: se.HTTPClient(), ClientID: fl.client, Provider: prov,
		UserAgent: se.UserAgent, Now: se.Now, Sleep: se.Sleep,
	}
	var dpopKey credstore.Secret
	newKey := func() (*dpop.Key, error) {
		k, stored, err := session.NewDPoPKey()
		dpopKey = stored
		return k, err
	}
	switch {
	case fl.dpopSet && !fl.dpop: // never: a client that requires DPoP then refuses the login
	case fl.dpop || fl.client == session.AgentClient:
		if cl.DPoP, err = newKey(); err != nil {
			return outcome.Fail(err)
		}
	default: // on if the token endpoint asks for a proof
		cl.NewDPoPKey = newKey
	}
	auth, err := cl.Authorize(ctx, fl.scope)
	if err != nil {
		return outcome.Fail(err)
	}
	if auth.VerificationURIComplete != "" {
		fmt.Fprintf(out, "To log in to %s, open this URL in a browser:\n\n  %s\n\nand check that it shows the code %s (valid for %s).\n",
			server, auth.VerificationURIComplete, auth.UserCode, auth.ExpiresIn)
	} else {
		fmt.Fprintf(out, "To log in to %s, open this URL in a browser:\n\n  %s\n\nand enter the code %s (valid for %s).\n",
			server, auth.VerificationURI, auth.UserCode, auth.ExpiresIn)
	}

	var (
		onWait deviceflow.WaitFunc
		sp     *spinner
	)
	if o.Terminal(out) {
		sp = startSpinner(out)
		onWait = sp.update
	}
	tok, err := cl.Poll(ctx, auth, onWait)
	if sp != nil {
		sp.stop() // before anything else is written
	}
	switch {
	case errors.Is(err, deviceflow.ErrAccessDenied):
		return outcome.Failf("login refused: access was denied in the browser (access_denied)")
	case errors.Is(err, deviceflow.ErrExpired):
		return outcome.Failf("login expired: the code was not approved within %s (expired_token); run edgectl login again", auth.ExpiresIn)
	case errors.Is(err, context.Canceled):
		return outcome.Failf("login cancelled")
	case fl.dpopSet && !fl.dpop && deviceflow.DPoPRequired(err):
		return outcome.Failf("login refused: the client %s requires DPoP-bound tokens: run edgectl login without --dpop=false", session.Sanitize(fl.client, 64))
	case err != nil:
		return outcome.Fail(err)
	}
	id, err := se.Verify(ctx, prov.Issuer, prov.JWKSURI, fl.client, tok.AccessToken)
	if err != nil {
		return outcome.Fail(err)
	}
	if err := session.CheckBinding(id, cl.DPoP); err != nil {
		return outcome.Fail(err)
	}
	creds := se.Credentials(server, fl.realm, fl.client, prov, tok, id)
	if cl.DPoP != nil {
		creds.DPoPKey = dpopKey
	}
	if err := se.Store.Save(creds); err != nil {
		return outcome.Fail(fmt.Errorf("storing the session: %w", err))
	}
	if err := se.Store.SetDefaultServer(server); err != nil {
		return outcome.Fail(fmt.Errorf("remembering the server: %w", err))
	}
	name := creds.Identity.Username
	if name == "" {
		name = creds.Identity.Subject
	}
	fmt.Fprintf(out, "Logged in to %s as %s (roles: %s). Access token valid until %s",
		server, session.Sanitize(name, 128), roles(creds.Identity.RealmRoles), creds.ExpiresAt.Format(time.RFC3339))
	if !creds.RefreshExpiresAt.IsZero() {
		fmt.Fprintf(out, ", session until %s", creds.RefreshExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintln(out, ".")
	if cl.DPoP != nil {
		fmt.Fprintf(out, "The tokens are DPoP-bound to this session's key (thumbprint %s): requests need a proof of it (edgectl token proof).\n", cl.DPoP.Thumbprint())
	}
	return nil
}

func roles(r []string) string {
	if len(r) == 0 {
		return "none"
	}
	s := make([]string, len(r))
	for i, x := range r {
		s[i] = session.Sanitize(x, 64)
	}
	return strings.Join(s, ",")
}

// spinner animates "waiting for approval" on a terminal.
type spinner struct {
	w        io.Writer
	mu       sync.Mutex
	deadline time.Time
	done     chan struct{}
	wg       sync.WaitGroup
}

func startSpinner(w io.Writer) *spinner {
	s := &spinner{w: w, done: make(chan struct{})}
	s.wg.Add(1)
	go s.run()
	return s
}

func (s *spinner) update(_, remaining time.Duration) {
	s.mu.Lock()
	s.deadline = time.Now().Add(remaining)
	s.mu.Unlock()
}

func (s *spinner) run() {
	defer s.wg.Done()
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	t := time.NewTicker(120 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		s.mu.Lock()
		left := ""
		if !s.deadline.IsZero() {
			left = fmt.Sprintf(" (code valid for %s)", time.Until(s.deadline).Round(time.Second))
		}
		fmt.Fprintf(s.w, "\r\033[K%s Waiting for approval in the browser…%s", frames[i%len(frames)], left)
		s.mu.Unlock()
		select {
		case <-s.done:
			fmt.Fprint(s.w, "\r\033[K")
			return
		case <-t.C:
		}
	}
}

func (s *spinner) stop() {
	close(s.done)
	s.wg.Wait()
}

type serverFlags struct {
	server       string
	insecureHTTP bool
}

func (f *serverFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.server, "server", "", "the server (default $"+session.EnvServer+", else the last login)")
	c.Flags().BoolVar(&f.insecureHTTP, "insecure-http", false, "allow a plain http server on a non-loopback host")
}

func (f *serverFlags) open(o session.Options) (*session.Env, string, error) {
	se, err := o.Open()
	if err != nil {
		return nil, "", err
	}
	se.AllowHTTP = f.insecureHTTP
	server, err := se.Server(f.server)
	if err != nil {
		return nil, "", err
	}
	return se, server, nil
}

func newLogout(o session.Options) *cobra.Command {
	var fl serverFlags
	c := &cobra.Command{
		Use:   "logout [--server URL]",
		Short: "Revoke the session at Keycloak and delete the stored credentials",
		Long: `Revoke the session's refresh token at the realm's revocation endpoint
(RFC 7009), then delete the stored credentials and their data key.

The local credentials are deleted even when the revocation fails; the
command then exits 1 and says so. An access token already issued stays valid
until it expires (at most the realm's access-token lifespan, 5 minutes).
Not being logged in is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			se, server, err := fl.open(o)
			if err != nil {
				return err
			}
			r, err := se.Logout(c.Context(), server)
			if err != nil {
				return outcome.Fail(err)
			}
			if !r.LoggedIn {
				fmt.Fprintf(c.ErrOrStderr(), "edgectl: not logged in to %s; nothing to do\n", server)
				return nil
			}
			if r.RevokeErr != nil {
				return outcome.Failf("the local credentials for %s were deleted, but the session could not be revoked at Keycloak (%v): its refresh token stays valid until it expires", server, r.RevokeErr)
			}
			fmt.Fprintf(c.OutOrStdout(), "Logged out of %s: the session was revoked and the local credentials deleted.\n", server)
			return nil
		},
	}
	fl.add(c)
	return c
}

// Whoami is the JSON line of "whoami --json".
type Whoami struct {
	Server           string              `json:"server"`
	Subject          string              `json:"sub"`
	Username         string              `json:"username,omitempty"`
	Email            string              `json:"email,omitempty"`
	Roles            []string            `json:"roles"`
	ClientRoles      map[string][]string `json:"client_roles,omitempty"`
	Guest            bool                `json:"guest,omitempty"`
	Client           string              `json:"azp,omitempty"`
	Issuer           string              `json:"iss"`
	ExpiresAt        time.Time           `json:"expires_at"`
	Expired          bool                `json:"expired"`
	SessionExpiresAt *time.Time          `json:"session_expires_at,omitempty"`
	// DPoPJKT is the thumbprint of the key the tokens are bound to (DPoP).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

func newWhoami(o session.Options) *cobra.Command {
	var (
		fl     serverFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "whoami [--server URL] [--json]",
		Short: "Show who the stored session is: subject, username, roles, expiry",
		Long: `Show the identity of the stored session, as verified (pkg/jwtauth) when the
token was received: subject, username, e-mail, realm roles, expiry. It reads
the encrypted credentials only (no network, no refresh); "expired" says
whether the access token has expired (edgectl token refreshes it).

Exit 0 logged in (even with an expired access token), 1 not logged in or the
credentials do not load, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			se, server, err := fl.open(o)
			if err != nil {
				return err
			}
			cr, err := se.Load(server)
			if err != nil {
				return outcome.Fail(err)
			}
			now := se.Now
			if now == nil {
				now = time.Now
			}
			w := whoami(cr, now)
			if asJSON {
				return outcome.WriteLine(c.OutOrStdout(), w)
			}
			return writeWhoamiTable(c.OutOrStdout(), w, now)
		},
	}
	fl.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON line instead of a table")
	return c
}

func whoami(cr *credstore.Credentials, now func() time.Time) Whoami {
	id := cr.Identity
	w := Whoami{
		Server: cr.Server, Subject: id.Subject, Username: id.Username, Email: id.Email,
		Roles: id.RealmRoles, ClientRoles: id.ClientRoles, Guest: id.Guest, Client: id.ClientID,
		Issuer: cr.Issuer, ExpiresAt: cr.ExpiresAt, Expired: !now().Before(cr.ExpiresAt),
	}
	if w.Roles == nil {
		w.Roles = []string{}
	}
	if id.Cnf != nil {
		w.DPoPJKT = id.Cnf.JKT
	}
	if !cr.RefreshExpiresAt.IsZero() {
		t := cr.RefreshExpiresAt
		w.SessionExpiresAt = &t
	}
	return w
}

func writeWhoamiTable(out io.Writer, w Whoami, now func() time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("server", w.Server)
	row("subject", session.Sanitize(w.Subject, 128))
	if w.Username != "" {
		row("username", session.Sanitize(w.Username, 128))
	}
	if w.Email != "" {
		row("email", session.Sanitize(w.Email, 128))
	}
	row("roles", roles(w.Roles))
	row("client", session.Sanitize(w.Client, 64))
	exp := w.ExpiresAt.Format(time.RFC3339)
	if w.Expired {
		exp += " (expired; edgectl token refreshes it)"
	} else {
		exp += fmt.Sprintf(" (in %s)", w.ExpiresAt.Sub(now()).Round(time.Second))
	}
	row("expires", exp)
	if w.SessionExpiresAt != nil {
		row("session until", w.SessionExpiresAt.Format(time.RFC3339))
	}
	if w.DPoPJKT != "" {
		row("dpop", "tokens bound to key "+session.Sanitize(w.DPoPJKT, 64))
	}
	return tw.Flush()
}

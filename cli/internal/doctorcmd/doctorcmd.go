// Package doctorcmd is "edgectl doctor": where edgectl keeps its
// configuration and credentials, whether the data key is in the OS keyring
// or in the file fallback, in what state the files are, and which credential
// API calls would use — every secret redacted. With --rotate-key it
// re-encrypts the server's credentials under a new data key.
package doctorcmd

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
)

// Report is the JSON line of "doctor --json". No field holds a secret.
type Report struct {
	Server       string          `json:"server,omitempty"`
	ServerSource string          `json:"server_source,omitempty"`
	Store        *credstore.Info `json:"store,omitempty"`
	KeyringMode  string          `json:"keyring_mode"`
	Session      *Session        `json:"session,omitempty"`
	APIKey       *APIKey         `json:"api_key,omitempty"`
	// Calls says which credential API calls would send: to targets that
	// accept API keys, and to JWT-only targets (edgectl keys).
	Calls    Calls     `json:"api_calls"`
	Rotation *Rotation `json:"rotation,omitempty"`
	Problems []string  `json:"problems"`
}

// Session describes the stored session (tokens redacted).
type Session struct {
	Subject          string     `json:"sub"`
	Username         string     `json:"username,omitempty"`
	Roles            []string   `json:"roles"`
	Issuer           string     `json:"iss"`
	Client           string     `json:"client"`
	AccessToken      string     `json:"access_token"`
	RefreshToken     string     `json:"refresh_token"`
	ExpiresAt        time.Time  `json:"expires_at"`
	Expired          bool       `json:"expired"`
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
}

// APIKey describes the API key given by flag or environment (redacted: its
// public key id only).
type APIKey struct {
	Source string `json:"source"`
	KID    string `json:"kid,omitempty"`
	Valid  bool   `json:"well_formed"`
}

// Calls is the resolution of credentials for API calls.
type Calls struct {
	APIKeyTargets string `json:"apikey_targets"`
	JWTOnly       string `json:"jwt_only_targets"`
}

// Rotation is what --rotate-key did.
type Rotation struct {
	KeyStore string `json:"key_store"`
	OldKeyID string `json:"old_key_id"`
	NewKeyID string `json:"new_key_id"`
}

const redacted = "[redacted]"

type flags struct {
	server, apiKey string
	asJSON, rotate bool
	insecureHTTP   bool
}

// New returns the "doctor" command.
func New(o session.Options) *cobra.Command {
	var fl flags
	c := &cobra.Command{
		Use:   "doctor [--server URL] [--json] [--rotate-key]",
		Short: "Show where credentials live (keyring or file fallback) and their state, secrets redacted",
		Long: `Show edgectl's config and credential files, whether the data key that
encrypts the credentials is in the OS keyring or in the key-file fallback (and
why), the stored session (tokens redacted), and which credential API calls
would use (--api-key > EDGEGUARD_API_KEY > the stored login).

--rotate-key re-encrypts the server's credentials under a new random data
key, where the old one was (keyring or file).

Exit 0 when nothing is wrong, 1 when a problem was found (listed), 2 usage
error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return run(c, o, fl) },
	}
	f := c.Flags()
	f.StringVar(&fl.server, "server", "", "the server (default $"+session.EnvServer+", else the last login)")
	f.StringVar(&fl.apiKey, "api-key", "", "an API key to account for (shown redacted: its key id only)")
	f.BoolVar(&fl.asJSON, "json", false, "print one JSON line instead of a table")
	f.BoolVar(&fl.rotate, "rotate-key", false, "re-encrypt the server's credentials under a new data key")
	f.BoolVar(&fl.insecureHTTP, "insecure-http", false, "allow a plain http server on a non-loopback host")
	return c
}

func run(c *cobra.Command, o session.Options, fl flags) error {
	se, err := o.Open()
	if err != nil {
		return err
	}
	se.AllowHTTP = fl.insecureHTTP
	r := Report{KeyringMode: string(se.Store.Mode()), Problems: []string{}}
	server, err := se.Server(fl.server)
	switch {
	case errors.Is(err, session.ErrNoServer):
		if fl.rotate {
			return err
		}
	case err != nil:
		return err
	default:
		r.Server = server
		r.ServerSource = serverSource(fl.server, se)
	}
	now := time.Now
	if se.Now != nil {
		now = se.Now
	}

	if fl.rotate && server != "" {
		rot, err := se.Store.RotateKey(server)
		if err != nil {
			return outcome.Fail(fmt.Errorf("key rotation: %w", err))
		}
		r.Rotation = &Rotation{KeyStore: rot.KeyStore, OldKeyID: rot.OldKeyID, NewKeyID: rot.NewKeyID}
	}

	var creds *credstore.Credentials
	if server != "" {
		info, cr := se.Store.Inspect(server)
		r.Store, creds = &info, cr
		if info.Problem != "" {
			r.Problems = append(r.Problems, info.Problem)
		}
		for _, fi := range []credstore.FileInfo{info.Credentials, info.KeyFile} {
			if fi.Exists && fi.Mode.Perm()&0o077 != 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s has mode %s: want 0600", fi.Path, fi.Perm))
			}
		}
		for _, fi := range []credstore.FileInfo{info.Dir, info.CredDir} {
			if fi.Exists && fi.Mode.Perm()&0o077 != 0 {
				r.Problems = append(r.Problems, fmt.Sprintf("%s has mode %s: want 0700", fi.Path, fi.Perm))
			}
		}
	} else {
		info, _ := se.Store.Inspect("")
		info.Credentials, info.KeyFile = credstore.FileInfo{}, credstore.FileInfo{}
		info.KeyringUser = ""
		r.Store = &info
	}
	if creds != nil {
		s := &Session{
			Subject: creds.Identity.Subject, Username: creds.Identity.Username, Roles: creds.Identity.RealmRoles,
			Issuer: creds.Issuer, Client: creds.ClientID, AccessToken: redacted,
			ExpiresAt: creds.ExpiresAt, Expired: !now().Before(creds.ExpiresAt),
		}
		if s.Roles == nil {
			s.Roles = []string{}
		}
		if creds.RefreshToken != "" {
			s.RefreshToken = redacted
		}
		if !creds.RefreshExpiresAt.IsZero() {
			t := creds.RefreshExpiresAt
			s.SessionExpiresAt = &t
			if !now().Before(t) {
				r.Problems = append(r.Problems, "the session has ended: run edgectl login")
			}
		}
		r.Session = s
	}

	// API-key resolution, without network: --api-key > EDGEGUARD_API_KEY.
	r.Calls.JWTOnly = "none (not logged in)"
	if creds != nil {
		r.Calls.JWTOnly = "the stored login (JWT)"
	}
	r.Calls.APIKeyTargets = r.Calls.JWTOnly
	for _, k := range []struct{ v, src string }{{fl.apiKey, "flag"}, {se.Lookup(session.EnvAPIKey), "env"}} {
		if k.v == "" {
			continue
		}
		ak := &APIKey{Source: k.src}
		if cred, err := session.ResolveAPIKey(k.v, k.src); err == nil {
			ak.KID, ak.Valid = cred.KID, true
			r.Calls.APIKeyTargets = fmt.Sprintf("the API key from %s (kid %s)", sourceName(k.src), cred.KID)
		} else {
			r.Problems = append(r.Problems, fmt.Sprintf("the API key from %s is not a well-formed sk_ key", sourceName(k.src)))
		}
		r.APIKey = ak
		break
	}

	if fl.asJSON {
		if err := outcome.WriteLine(c.OutOrStdout(), r); err != nil {
			return err
		}
	} else if err := writeTable(c.OutOrStdout(), r, now); err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		return outcome.ErrInvalid
	}
	return nil
}

func sourceName(src string) string {
	if src == "flag" {
		return "--api-key"
	}
	return session.EnvAPIKey
}

func serverSource(flag string, se *session.Env) string {
	switch {
	case flag != "":
		return "--server"
	case se.Lookup(session.EnvServer) != "":
		return session.EnvServer
	default:
		return "last login"
	}
}

func fileLine(fi credstore.FileInfo) string {
	if fi.Path == "" {
		return "-"
	}
	if !fi.Exists {
		return fi.Path + " (not present)"
	}
	if fi.Size > 0 || !fi.Mode.IsDir() {
		return fmt.Sprintf("%s (%s, %d bytes)", fi.Path, fi.Perm, fi.Size)
	}
	return fmt.Sprintf("%s (%s)", fi.Path, fi.Perm)
}

func writeTable(w io.Writer, r Report, now func() time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	if r.Server != "" {
		row("server", r.Server+" (from "+r.ServerSource+")")
	} else {
		row("server", "none (give --server, set "+session.EnvServer+", or log in)")
	}
	in := r.Store
	row("config dir", fileLine(in.Dir))
	row("credentials dir", fileLine(in.CredDir))
	if r.Server != "" {
		row("credentials file", fileLine(in.Credentials))
	}
	keyring := "available"
	if !in.KeyringAvailable {
		keyring = "unavailable: " + in.KeyringReason
	}
	row("OS keyring", keyring)
	row("keyring mode", string(r.KeyringMode)+" ("+session.EnvKeyring+": auto, file or keyring)")
	switch in.KeyStore {
	case credstore.StoreKeyring:
		row("data key", fmt.Sprintf("OS keyring, service %s, item %s (key id %s)", in.KeyringService, in.KeyringUser, in.KeyID))
	case credstore.StoreFile:
		row("data key", "file fallback: "+fileLine(in.KeyFile)+" (key id "+in.KeyID+")")
	default:
		if r.Server != "" {
			next := "the OS keyring"
			if !in.KeyringAvailable || r.KeyringMode == string(credstore.ModeFile) {
				next = "the key file " + in.KeyFile.Path
			}
			row("data key", "none yet (the next login puts it in "+next+")")
		}
	}
	if r.Rotation != nil {
		row("key rotation", fmt.Sprintf("done: %s -> %s (%s)", r.Rotation.OldKeyID, r.Rotation.NewKeyID, r.Rotation.KeyStore))
	}
	if s := r.Session; s != nil {
		name := s.Username
		if name == "" {
			name = s.Subject
		}
		row("logged in as", fmt.Sprintf("%s (sub %s), roles %s", session.Sanitize(name, 128), session.Sanitize(s.Subject, 64), strings.Join(s.Roles, ",")))
		exp := s.ExpiresAt.Format(time.RFC3339)
		if s.Expired {
			exp += ", expired"
		} else {
			exp += fmt.Sprintf(", in %s", s.ExpiresAt.Sub(now()).Round(time.Second))
		}
		row("access token", redacted+", expires "+exp)
		if s.RefreshToken != "" {
			until := "-"
			if s.SessionExpiresAt != nil {
				until = s.SessionExpiresAt.Format(time.RFC3339)
			}
			row("refresh token", redacted+", session until "+until)
		}
	} else if r.Server != "" && in.Problem == "" {
		row("logged in as", "not logged in (edgectl login)")
	}
	if k := r.APIKey; k != nil {
		v := redacted + " from " + sourceName(k.Source)
		if k.Valid {
			v += ", kid " + k.KID
		} else {
			v += ", malformed"
		}
		row("api key", v)
	}
	row("API-key routes use", r.Calls.APIKeyTargets)
	row("keys commands use", r.Calls.JWTOnly)
	if len(r.Problems) == 0 {
		row("problems", "none")
	}
	for _, p := range r.Problems {
		row("problem", p)
	}
	return tw.Flush()
}

// Package keyscmd is "edgectl keys": the caller's API keys through llm-api's
// /auth/api-keys (create, list, revoke, rotate), authenticated with the
// stored login's access token.
//
// Keys are managed with the login (a JWT) only, never with an API key: the
// edge and llm-api refuse keys there, and edgectl refuses --api-key for
// these commands rather than send one. A new key is printed once, on stdout;
// no token is ever printed.
package keyscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/budgetflags"
	"github.com/edgeguard/edgeguard/cli/internal/llmapi"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
)

// Path is llm-api's API-key collection.
const Path = "/auth/api-keys"

// Key is one API key as llm-api shows it. Key (the secret) is only in the
// answers of create and rotate.
type Key struct {
	ID                string     `json:"id"`
	KID               string     `json:"kid"`
	Name              string     `json:"name"`
	Last4             string     `json:"last4"`
	Roles             []string   `json:"roles"`
	Status            string     `json:"status"`
	CreatedAt         *time.Time `json:"created_at"`
	ExpiresAt         *time.Time `json:"expires_at"`
	RevokedAt         *time.Time `json:"revoked_at"`
	LastUsedAt        *time.Time `json:"last_used_at"`
	Key               string     `json:"key,omitempty"`
	ReplacedID        string     `json:"replaced_id,omitempty"`
	ReplacedKID       string     `json:"replaced_kid,omitempty"`
	ReplacedRevokedAt *time.Time `json:"replaced_revoked_at,omitempty"`
	// Budget is the key's own budget (nil: none, its owner's applies) and
	// Models its models (nil: its owner's).
	Budget *Budget  `json:"budget"`
	Models []string `json:"models"`
}

// Budget is a key's own budget as llm-api shows it: every window, null
// when the key is not limited in it.
type Budget struct {
	TokensPerMinute *int64  `json:"tokens_per_minute"`
	TokensPerDay    *int64  `json:"tokens_per_day"`
	TokensPerMonth  *int64  `json:"tokens_per_month"`
	USDPerDay       *string `json:"usd_per_day"`
	USDPerMonth     *string `json:"usd_per_month"`
}

// String describes k without its secret.
func (k Key) String() string {
	return fmt.Sprintf("key{id:%s kid:%s name:%q key:%t}", k.ID, k.KID, k.Name, k.Key != "")
}

// GoString is String.
func (k Key) GoString() string { return k.String() }

type flags struct {
	server, api, apiKey string
	asJSON, insecure    bool
}

// New returns the "keys" command.
func New(o session.Options) *cobra.Command {
	fl := &flags{}
	c := &cobra.Command{
		Use:   "keys create|list|revoke|rotate",
		Short: "Manage your API keys (llm-api /auth/api-keys) with your login",
		Long: `Manage your API keys through llm-api's /auth/api-keys, authenticated with the
stored login's access token (refreshed when needed). API keys cannot manage
keys: --api-key is refused here, and EDGEGUARD_API_KEY is ignored.

--api is llm-api's public URL; by default the server itself (the gateway
routes /auth/api-keys to llm-api). Exit 0 done, 1 refused by llm-api or not
logged in, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return errors.New("keys: missing subcommand (create, list, revoke, rotate)")
		},
	}
	pf := c.PersistentFlags()
	pf.StringVar(&fl.server, "server", "", "the server you logged in to (default $"+session.EnvServer+", else the last login)")
	pf.StringVar(&fl.api, "api", "", "llm-api's public base URL (default: the server URL)")
	pf.StringVar(&fl.apiKey, "api-key", "", "refused: keys are managed with your login, never with an API key")
	pf.BoolVar(&fl.asJSON, "json", false, "print one JSON line instead of text")
	pf.BoolVar(&fl.insecure, "insecure-http", false, "allow plain http to a non-loopback host")
	c.AddCommand(newCreate(o, fl), newList(o, fl), newRevoke(o, fl), newRotate(o, fl))
	return c
}

// CreateRequest is what POST /auth/api-keys is asked for (llm-api's
// README). No Roles and not NoRoles: the caller's roles without admin.
type CreateRequest struct {
	Name             string
	ExpiresInDays    int   // 0: llm-api's default (unless ExpiresInSeconds)
	ExpiresInSeconds int64 // 0: not sent
	Roles            []string
	NoRoles          bool // send "roles": [] (a key without roles)
	// Budget and Models narrow the key within its owner's budget (nil,
	// or no window: not sent).
	Budget *budgetflags.Limits
	Models []string
}

// Create creates a key with a's login; the answer carries the secret
// (Key.Key), once.
func Create(ctx context.Context, a *llmapi.Client, r CreateRequest) (Key, error) {
	body := map[string]any{"name": r.Name}
	if r.ExpiresInDays > 0 {
		body["expires_in_days"] = r.ExpiresInDays
	}
	if r.ExpiresInSeconds > 0 {
		body["expires_in_seconds"] = r.ExpiresInSeconds
	}
	switch {
	case r.NoRoles:
		body["roles"] = []string{}
	case len(r.Roles) > 0:
		body["roles"] = r.Roles
	}
	if r.Budget != nil && !r.Budget.Empty() {
		body["budget"] = r.Budget
	}
	if r.Models != nil {
		body["models"] = r.Models
	}
	var k Key
	if _, err := a.Do(ctx, http.MethodPost, Path, body, &k); err != nil {
		return Key{}, err
	}
	if k.Key == "" || k.ID == "" {
		return Key{}, errors.New("llm-api's answer carries no key")
	}
	return k, nil
}

// Revoke revokes key id (llm-api answers 204, also for a key already
// revoked).
func Revoke(ctx context.Context, a *llmapi.Client, id string) error {
	_, err := a.Do(ctx, http.MethodDelete, Path+"/"+url.PathEscape(id), nil, nil)
	return err
}

// Open is the client of the key API: the login only (an API key never
// manages keys).
func Open(ctx context.Context, o session.Options, c llmapi.Conn) (*llmapi.Client, error) {
	c.AcceptAPIKey = false
	a, err := llmapi.Open(ctx, o, c)
	if err != nil {
		return nil, err
	}
	a.Hints = map[string]string{"forbidden_role": "guests cannot manage API keys"}
	return a, nil
}

func open(ctx context.Context, o session.Options, fl *flags, stderr io.Writer) (*llmapi.Client, error) {
	a, err := Open(ctx, o, llmapi.Conn{Server: fl.server, API: fl.api, APIKey: fl.apiKey, Insecure: fl.insecure})
	if err != nil {
		return nil, err
	}
	if a.Ignored != "" {
		fmt.Fprintf(stderr, "edgectl: %s is ignored: keys are managed with your login\n", session.EnvAPIKey)
	}
	return a, nil
}

func newCreate(o session.Options, fl *flags) *cobra.Command {
	var (
		name    string
		days    int
		roles   []string
		noRoles bool
		bf      budgetflags.Flags
	)
	c := &cobra.Command{
		Use:   "create --name NAME [--expires-in-days N] [--role R]... [--no-roles] [budget flags] [--model M]...",
		Short: "Create an API key; the key is printed once",
		Long: `Create an API key. The key is printed on stdout, alone on a line (with
--json: the whole answer as one JSON line, the key in "key"), and only this
once: llm-api keeps only its HMAC. Its details and that reminder go to
stderr.

Roles default to your current roles without admin (llm-api's rule); --role
picks some of the roles you hold, --no-roles makes a key without roles.

The budget flags give the key a budget of its own, within yours: in every
window you are limited in, the key must be limited too, at most as high
(llm-api refuses with budget_exceeds_owner). USD figures are decimals taken
exactly as written ("2.5", at most 9 decimals). --model (repeatable) narrows
the key to some of your models (else models_not_allowed). Without them the
key shares your budget and models.`,
		Example: `  KEY=$(edgectl keys create --name ci --expires-in-days 30)
  edgectl keys create --name notebook --role user --json | jq -r .key
  edgectl keys create --name agent --tokens-per-day 200000 --usd-per-day 2.5 --model qwen2.5-7b`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" {
				return errors.New("--name is required")
			}
			if noRoles && len(roles) > 0 {
				return errors.New("--role and --no-roles exclude each other")
			}
			if days < 0 {
				return errors.New("--expires-in-days must be positive")
			}
			a, err := open(c.Context(), o, fl, c.ErrOrStderr())
			if err != nil {
				return err
			}
			k, err := Create(c.Context(), a, CreateRequest{Name: name, ExpiresInDays: days, Roles: roles, NoRoles: noRoles,
				Budget: &bf.Limits, Models: bf.Models})
			if err != nil {
				return outcome.Fail(err)
			}
			return printNewKey(c, fl, k, "Created")
		},
	}
	c.Flags().StringVar(&name, "name", "", "the key's name, unique among your active keys (required)")
	c.Flags().IntVar(&days, "expires-in-days", 0, "lifetime in days (default: llm-api's API_KEY_DEFAULT_EXPIRES_DAYS)")
	c.Flags().StringSliceVar(&roles, "role", nil, "a realm role you hold, comma-separated or repeated (default: your roles without admin)")
	c.Flags().BoolVar(&noRoles, "no-roles", false, "a key without roles")
	bf.Add(c.Flags(), "the key's")
	return c
}

func printNewKey(c *cobra.Command, fl *flags, k Key, verb string) error {
	if k.Key == "" {
		return outcome.Failf("llm-api's answer carries no key")
	}
	stderr := c.ErrOrStderr()
	if fl.asJSON {
		if err := outcome.WriteLine(c.OutOrStdout(), k); err != nil {
			return err
		}
	} else if _, err := fmt.Fprintln(c.OutOrStdout(), session.Sanitize(k.Key, 256)); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s API key %q (id %s, kid %s, roles %s, expires %s, budget %s, models %s).\n",
		verb, session.Sanitize(k.Name, 64), session.Sanitize(k.ID, 64), session.Sanitize(k.KID, 16),
		strings.Join(sanitizeAll(k.Roles), ","), when(k.ExpiresAt), BudgetOf(k), ModelsOf(k))
	if k.ReplacedID != "" {
		fmt.Fprintf(stderr, "It replaces key %s (kid %s), revoked at %s.\n",
			session.Sanitize(k.ReplacedID, 64), session.Sanitize(k.ReplacedKID, 16), when(k.ReplacedRevokedAt))
	}
	fmt.Fprintln(stderr, "The key is shown only this once: store it now (it cannot be retrieved again).")
	return nil
}

// BudgetOf is k's own budget as text ("tokens/day=200000,usd/day=2.5"),
// "owner's" when it has none.
func BudgetOf(k Key) string {
	if k.Budget == nil || budgetflags.Limits(*k.Budget).Empty() {
		return "owner's"
	}
	return budgetflags.Limits(*k.Budget).String()
}

// ModelsOf is k's models as text, "owner's" when it has none of its own.
func ModelsOf(k Key) string {
	if k.Models == nil {
		return "owner's"
	}
	return strings.Join(sanitizeAll(k.Models), ",")
}

func sanitizeAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = session.Sanitize(s, 64)
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newList(o session.Options, fl *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List your API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			a, err := open(c.Context(), o, fl, c.ErrOrStderr())
			if err != nil {
				return err
			}
			var l struct {
				Keys []Key `json:"keys"`
			}
			if _, err := a.Do(c.Context(), http.MethodGet, Path, nil, &l); err != nil {
				return outcome.Fail(err)
			}
			for i := range l.Keys {
				l.Keys[i].Key = "" // a list never carries secrets; make sure none is printed
			}
			if l.Keys == nil {
				l.Keys = []Key{}
			}
			if fl.asJSON {
				return outcome.WriteLine(c.OutOrStdout(), l)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKID\tNAME\tSTATUS\tROLES\tEXPIRES\tLAST USED\tBUDGET\tMODELS")
			for _, k := range l.Keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", session.Sanitize(k.ID, 64), session.Sanitize(k.KID, 16),
					session.Sanitize(k.Name, 64), session.Sanitize(k.Status, 16), strings.Join(sanitizeAll(k.Roles), ","),
					when(k.ExpiresAt), when(k.LastUsedAt), BudgetOf(k), ModelsOf(k))
			}
			return tw.Flush()
		},
	}
}

func checkID(args []string) error {
	if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
		return errors.New("give exactly one key ID (from edgectl keys list)")
	}
	return nil
}

func newRevoke(o session.Options, fl *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key (at once; the edge learns of it within a second)",
		Args:  func(_ *cobra.Command, args []string) error { return checkID(args) },
		RunE: func(c *cobra.Command, args []string) error {
			a, err := open(c.Context(), o, fl, c.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := Revoke(c.Context(), a, args[0]); err != nil {
				return outcome.Fail(err)
			}
			if fl.asJSON {
				return outcome.WriteLine(c.OutOrStdout(), struct {
					Revoked bool   `json:"revoked"`
					ID      string `json:"id"`
				}{true, args[0]})
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "revoked %s\n", session.Sanitize(args[0], 64))
			return err
		},
	}
}

func newRotate(o session.Options, fl *flags) *cobra.Command {
	var grace time.Duration
	c := &cobra.Command{
		Use:   "rotate ID [--grace DURATION]",
		Short: "Replace an API key with a new one (same name, roles, lifetime); the new key is printed once",
		Long: `Replace an API key with a new one (new secret, new kid, same name, roles and
lifetime). The old key keeps working for --grace (default 0: revoked at
once). The new key is printed like "keys create" prints it.`,
		Args: func(_ *cobra.Command, args []string) error { return checkID(args) },
		RunE: func(c *cobra.Command, args []string) error {
			if grace < 0 || grace > 7*24*time.Hour || grace%time.Second != 0 {
				return errors.New("--grace must be whole seconds between 0 and 168h")
			}
			a, err := open(c.Context(), o, fl, c.ErrOrStderr())
			if err != nil {
				return err
			}
			var k Key
			body := map[string]any{"grace_seconds": int64(grace / time.Second)}
			if _, err := a.Do(c.Context(), http.MethodPost, Path+"/"+url.PathEscape(args[0])+"/rotate", body, &k); err != nil {
				return outcome.Fail(err)
			}
			return printNewKey(c, fl, k, "Rotated: new")
		},
	}
	c.Flags().DurationVar(&grace, "grace", 0, "how long the old key stays valid (0: revoked at once; at most 168h)")
	return c
}

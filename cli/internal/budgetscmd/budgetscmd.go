// Package budgetscmd is "edgectl budgets": an administrator's per-user
// budget overrides through llm-api's /v1/admin/budgets/users/{subject}
// (set, get, delete). An override replaces the user's roles' budget — and,
// with --model, their models — until it is deleted.
//
// The admin API takes the login only (role admin): --api-key is refused and
// EDGEGUARD_API_KEY ignored, as for "edgectl keys". It is not the place for
// a key's own budget (edgectl keys create --tokens-per-day …) nor for usage
// (edgectl usage --all).
package budgetscmd

import (
	"encoding/json"
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

// Path is the collection of overrides; an override is Path + "/" + the
// path-escaped subject.
const Path = "/v1/admin/budgets/users"

// Override is an override as llm-api shows it.
type Override struct {
	Subject string `json:"subject"`
	budgetflags.Limits
	// Models replace the roles' (nil: the roles' models).
	Models    []string  `json:"models"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// request is the body of PUT: the windows given and the models given.
type request struct {
	budgetflags.Limits
	Models []string `json:"models,omitempty"`
}

type flags struct {
	server, api, apiKey string
	asJSON, insecure    bool
}

// New returns the "budgets" command.
func New(o session.Options) *cobra.Command {
	fl := &flags{}
	c := &cobra.Command{
		Use:   "budgets set|get|delete USER_SUBJECT",
		Short: "Set, show or remove a user's budget override (admin; llm-api /v1/admin/budgets/users)",
		Long: `Manage a user's budget override through llm-api's admin API
(/v1/admin/budgets/users/{subject}), with your login; the admin role is
needed. An override replaces the user's roles' budget — and, with --model,
their models — from the user's next request on; "delete" returns the user
to the roles' budget. USER_SUBJECT is the user's Keycloak subject ("sub").

--api is llm-api's public URL (default: the server). Exit 0 done, 1 refused
by llm-api or not logged in, 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return errors.New("budgets: missing subcommand (set, get, delete)")
		},
	}
	pf := c.PersistentFlags()
	pf.StringVar(&fl.server, "server", "", "the server you logged in to (default $"+session.EnvServer+", else the last login)")
	pf.StringVar(&fl.api, "api", "", "llm-api's public base URL (default: the server URL)")
	pf.StringVar(&fl.apiKey, "api-key", "", "refused: the admin API takes your login, never an API key")
	pf.BoolVar(&fl.asJSON, "json", false, "print llm-api's answer as one JSON line")
	pf.BoolVar(&fl.insecure, "insecure-http", false, "allow plain http to a non-loopback host")
	c.AddCommand(newSet(o, fl), newGet(o, fl), newDelete(o, fl))
	return c
}

func open(c *cobra.Command, o session.Options, fl *flags) (*llmapi.Client, error) {
	a, err := llmapi.Open(c.Context(), o, llmapi.Conn{Server: fl.server, API: fl.api, APIKey: fl.apiKey, Insecure: fl.insecure})
	if err != nil {
		return nil, err
	}
	a.Hints = map[string]string{"insufficient_role": "the admin role is needed"}
	if a.Ignored != "" {
		fmt.Fprintf(c.ErrOrStderr(), "edgectl: %s is ignored: the admin API needs your login\n", session.EnvAPIKey)
	}
	return a, nil
}

// subject checks the one argument. llm-api decides what a subject may be
// (400 invalid_subject); edgectl refuses only what could not be one path
// segment ("", ".", "..": a leading dot), and escapes the rest.
func subject(args []string) error {
	if len(args) != 1 || args[0] == "" {
		return errors.New("give exactly one USER_SUBJECT (the user's Keycloak sub)")
	}
	if strings.HasPrefix(args[0], ".") {
		return errors.New("a subject does not start with a dot")
	}
	return nil
}

func overridePath(sub string) string { return Path + "/" + url.PathEscape(sub) }

func newSet(o session.Options, fl *flags) *cobra.Command {
	var (
		bf        budgetflags.Flags
		unlimited bool
	)
	c := &cobra.Command{
		Use:   "set USER_SUBJECT [--tokens-per-{minute,day,month} N] [--usd-per-{day,month} USD] [--model M]... | --unlimited",
		Short: "Set a user's budget override (replacing any earlier one)",
		Long: `Set the user's budget override, replacing an earlier one as a whole: the
windows given are limited, the others are not — by the override; the roles'
per-model budgets still apply. --model (repeatable) replaces the roles' models
(it may widen them). USD figures are decimals taken exactly as written.

At least one limit or --model is needed; --unlimited sets an override
without any limit (the user is then limited by no window of their own).`,
		Example: `  edgectl budgets set 2f1c0000-0000-4000-8000-000000000000 --tokens-per-day 2000000 --usd-per-month 150
  edgectl budgets set 2f1c… --tokens-per-minute 50000 --model qwen2.5-7b --model llama-3.1-70b`,
		Args: func(_ *cobra.Command, args []string) error { return subject(args) },
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case !bf.Given() && !unlimited:
				return errors.New("give a limit (--tokens-per-day, --usd-per-month, …) or --model; --unlimited for an override without any limit")
			case unlimited && !bf.Limits.Empty():
				return errors.New("--unlimited and a limit exclude each other")
			}
			a, err := open(c, o, fl)
			if err != nil {
				return err
			}
			var ov Override
			raw, err := a.Do(c.Context(), http.MethodPut, overridePath(args[0]), request{Limits: bf.Limits, Models: bf.Models}, &ov)
			if err != nil {
				return outcome.Fail(err)
			}
			return show(c.OutOrStdout(), fl, raw, ov)
		},
	}
	bf.Add(c.Flags(), "the user's")
	c.Flags().BoolVar(&unlimited, "unlimited", false, "an override without any limit")
	return c
}

func newGet(o session.Options, fl *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "get USER_SUBJECT",
		Short: "Show a user's budget override (llm-api: 404 budget_override_not_found when there is none)",
		Args:  func(_ *cobra.Command, args []string) error { return subject(args) },
		RunE: func(c *cobra.Command, args []string) error {
			a, err := open(c, o, fl)
			if err != nil {
				return err
			}
			var ov Override
			raw, err := a.Do(c.Context(), http.MethodGet, overridePath(args[0]), nil, &ov)
			if err != nil {
				return outcome.Fail(err)
			}
			return show(c.OutOrStdout(), fl, raw, ov)
		},
	}
}

func newDelete(o session.Options, fl *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete USER_SUBJECT",
		Short: "Remove a user's budget override: the roles' budgets apply again",
		Args:  func(_ *cobra.Command, args []string) error { return subject(args) },
		RunE: func(c *cobra.Command, args []string) error {
			a, err := open(c, o, fl)
			if err != nil {
				return err
			}
			if _, err := a.Do(c.Context(), http.MethodDelete, overridePath(args[0]), nil, nil); err != nil {
				return outcome.Fail(err)
			}
			if fl.asJSON {
				return outcome.WriteLine(c.OutOrStdout(), struct {
					Deleted bool   `json:"deleted"`
					Subject string `json:"subject"`
				}{true, args[0]})
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "deleted the budget override of %s: the roles' budgets apply\n", session.Sanitize(args[0], 128))
			return err
		},
	}
}

// show prints an override: llm-api's answer as one JSON line, or a table
// of every window ("-": not limited by the override).
func show(w io.Writer, fl *flags, raw []byte, ov Override) error {
	if fl.asJSON {
		return outcome.WriteLine(w, json.RawMessage(raw))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "subject\t%s\n", session.Sanitize(ov.Subject, 128))
	limited := map[string]string{}
	for _, kv := range ov.Limits.Windows() {
		limited[kv[0]] = kv[1]
	}
	for _, n := range []string{"tokens/min", "tokens/day", "tokens/month", "usd/day", "usd/month"} {
		v, ok := limited[n]
		if !ok {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", n, v)
	}
	models := "the roles' models"
	if ov.Models != nil {
		ms := make([]string, len(ov.Models))
		for i, m := range ov.Models {
			ms[i] = session.Sanitize(m, 128)
		}
		models = strings.Join(ms, ", ")
	}
	fmt.Fprintf(tw, "models\t%s\n", models)
	updated := "-"
	if !ov.UpdatedAt.IsZero() {
		updated = ov.UpdatedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "updated\t%s by %s\n", updated, session.Sanitize(ov.UpdatedBy, 128))
	return tw.Flush()
}

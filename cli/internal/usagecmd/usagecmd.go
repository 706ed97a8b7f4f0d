// Package usagecmd is "edgectl usage": the caller's budgets as llm-api's
// next reservation sees them (limit, used, remaining and reset of every
// limited window) and the caller's usage-ledger rows, from GET /v1/usage;
// with --all, an administrator's view of every subject's (or one's) rows
// from GET /v1/admin/usage.
//
// GET /v1/usage takes the login or an API key (--api-key >
// EDGEGUARD_API_KEY > the login: an API key sees its own key's rows only);
// the admin route takes the login only. Nothing secret is printed: the
// answer carries none, and a key is named by its public key id.
package usagecmd

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeguard/edgeguard/cli/internal/llmapi"
	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/cli/internal/session"
)

// llm-api's routes.
const (
	Path      = "/v1/usage"
	AdminPath = "/v1/admin/usage"
)

// Figure is a number of an answer kept as written: a JSON number (tokens)
// or a decimal string (USD). Never a float.
type Figure string

// UnmarshalJSON takes a string or a number literal.
func (f *Figure) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = Figure(s)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*f = Figure(b)
	default:
		return errors.New("a figure is a number or a decimal string")
	}
	return nil
}

func (f Figure) String() string { return session.Sanitize(string(f), 40) }

// Window is one limited window of a scope.
type Window struct {
	Limit     Figure `json:"limit"`
	Used      Figure `json:"used"`
	Remaining Figure `json:"remaining"`
	Reset     string `json:"reset"`
}

// Row is a usage-ledger row: a day, a model, a key (KeyID "": the login).
type Row struct {
	Day              string `json:"day"`
	Subject          string `json:"subject"`
	KeyID            string `json:"key_id"`
	Model            string `json:"model"`
	Requests         int64  `json:"requests"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	Tokens           int64  `json:"tokens"`
	USD              string `json:"usd"`
	Flagged          int64  `json:"flagged"`
}

// Usage is the answer of GET /v1/usage (and, without Models and Budgets,
// of GET /v1/admin/usage, whose Subject may be null).
type Usage struct {
	Subject *string `json:"subject"`
	From    string  `json:"from"`
	To      string  `json:"to"`
	// Models the caller may use; nil: every model.
	Models  *[]string                    `json:"models"`
	Budgets map[string]map[string]Window `json:"budgets"`
	Usage   []Row                        `json:"usage"`
	// Truncated: llm-api cut the rows (at 5000): ask for a shorter range.
	Truncated bool `json:"truncated"`
}

type flags struct {
	server, api, apiKey string
	from, to, subject   string
	asJSON, insecure    bool
	all                 bool
}

// New returns the "usage" command.
func New(o session.Options) *cobra.Command {
	fl := &flags{}
	c := &cobra.Command{
		Use:   "usage [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--json] [--all [--subject SUBJECT]]",
		Short: "Your remaining budgets and your token usage (llm-api /v1/usage); --all: everyone's (admin)",
		Long: `Show your budgets as llm-api's next request sees them — per scope (user, key,
model:<name>) and window: limit, used, remaining, and when the window is
whole again — the models you may use, and your usage per day, model and key
(requests, prompt and completion tokens, USD) from GET /v1/usage.

With your login you see all your rows; with an API key (--api-key, else
EDGEGUARD_API_KEY) only that key's, and its own budget as scope "key".
--all shows every user's rows (or --subject's) from GET /v1/admin/usage:
the admin role and the login are needed.

--from and --to are UTC days, both included (default: from the first day of
this month to today; at most 366 days). --json prints llm-api's answer as one
JSON line. Exit 0 done, 1 refused by llm-api or not logged in, 2 usage error.`,
		Example: `  edgectl usage
  edgectl usage --from 2026-12-01 --to 2026-12-07 --json | jq '.budgets.user'
  EDGEGUARD_API_KEY=$KEY edgectl usage
  edgectl usage --all --subject 2f1c0000-0000-4000-8000-000000000000`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return run(c, o, fl) },
	}
	f := c.Flags()
	f.StringVar(&fl.server, "server", "", "the server you logged in to (default $"+session.EnvServer+", else the last login)")
	f.StringVar(&fl.api, "api", "", "llm-api's public base URL (default: the server URL)")
	f.StringVar(&fl.apiKey, "api-key", "", "ask as this API key (default $"+session.EnvAPIKey+", else your login; prefer the variable: arguments show in ps); not with --all")
	f.StringVar(&fl.from, "from", "", "first UTC day, YYYY-MM-DD (default: the first day of this month)")
	f.StringVar(&fl.to, "to", "", "last UTC day, YYYY-MM-DD (default: today)")
	f.BoolVar(&fl.all, "all", false, "every user's usage (GET /v1/admin/usage; role admin)")
	f.StringVar(&fl.subject, "subject", "", "with --all: only this user's (Keycloak subject)")
	f.BoolVar(&fl.asJSON, "json", false, "print llm-api's answer as one JSON line")
	f.BoolVar(&fl.insecure, "insecure-http", false, "allow plain http to a non-loopback host")
	return c
}

// checkDay accepts exactly YYYY-MM-DD ("" : not given); the range rules
// (order, length, from 2000 on) are llm-api's, which knows today.
func checkDay(flag, s string) error {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return fmt.Errorf("%s must be a day YYYY-MM-DD", flag)
	}
	return nil
}

func (fl *flags) query() (string, error) {
	if err := errors.Join(checkDay("--from", fl.from), checkDay("--to", fl.to)); err != nil {
		return "", err
	}
	if fl.subject != "" && !fl.all {
		return "", errors.New("--subject needs --all (the admin view)")
	}
	q := url.Values{}
	for k, v := range map[string]string{"from": fl.from, "to": fl.to, "subject": fl.subject} {
		if v != "" {
			q.Set(k, v)
		}
	}
	p := Path
	if fl.all {
		p = AdminPath
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p, nil
}

func run(c *cobra.Command, o session.Options, fl *flags) error {
	p, err := fl.query()
	if err != nil {
		return err
	}
	a, err := llmapi.Open(c.Context(), o, llmapi.Conn{Server: fl.server, API: fl.api, APIKey: fl.apiKey, Insecure: fl.insecure,
		AcceptAPIKey: !fl.all})
	if err != nil {
		return err
	}
	a.Hints = map[string]string{
		"insufficient_role":       "the admin role is needed",
		"auth_method_not_allowed": "this needs your login, not an API key",
	}
	if a.Ignored != "" {
		fmt.Fprintf(c.ErrOrStderr(), "edgectl: %s is ignored: the admin API needs your login\n", session.EnvAPIKey)
	}
	var u Usage
	raw, err := a.Do(c.Context(), http.MethodGet, p, nil, &u)
	if err != nil {
		return outcome.Fail(err)
	}
	if u.Truncated {
		fmt.Fprintln(c.ErrOrStderr(), "edgectl: llm-api cut the answer at its row limit: ask for a shorter range (--from, --to)")
	}
	if fl.asJSON {
		return outcome.WriteLine(c.OutOrStdout(), json.RawMessage(raw))
	}
	return write(c.OutOrStdout(), u, fl.all, a.Credential())
}

// windowOrder is how windows are listed; unknown ones follow, sorted.
var windowOrder = []string{"tokens_per_minute", "tokens_per_day", "tokens_per_month", "usd_per_day", "usd_per_month"}

var windowNames = map[string]string{"tokens_per_minute": "tokens/min", "tokens_per_day": "tokens/day",
	"tokens_per_month": "tokens/month", "usd_per_day": "usd/day", "usd_per_month": "usd/month"}

// scopeRank orders scopes: user, key, model:…, anything else.
func scopeRank(s string) int {
	switch {
	case s == "user":
		return 0
	case s == "key":
		return 1
	case strings.HasPrefix(s, "model:"):
		return 2
	}
	return 3
}

func ordered[V any](m map[string]V, less func(a, b string) int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, less)
	return keys
}

func write(w io.Writer, u Usage, all bool, cred string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	clean := func(s string) string { return session.Sanitize(s, 128) }
	subject := "all users"
	if u.Subject != nil {
		subject = clean(*u.Subject)
	}
	fmt.Fprintf(tw, "subject\t%s\n", subject)
	if !all {
		fmt.Fprintf(tw, "as\t%s\n", cred)
	}
	fmt.Fprintf(tw, "days\t%s .. %s (UTC)\n", clean(u.From), clean(u.To))
	if !all {
		models := "every model"
		if u.Models != nil {
			models = "none"
			if len(*u.Models) > 0 {
				ms := make([]string, len(*u.Models))
				for i, m := range *u.Models {
					ms[i] = clean(m)
				}
				models = strings.Join(ms, ", ")
			}
		}
		fmt.Fprintf(tw, "models\t%s\n", models)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if !all {
		fmt.Fprintln(w)
		if len(u.Budgets) == 0 {
			fmt.Fprintln(w, "No budget limits.")
		} else {
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCOPE\tWINDOW\tLIMIT\tUSED\tREMAINING\tRESET")
			scopes := ordered(u.Budgets, func(a, b string) int { return cmp.Or(cmp.Compare(scopeRank(a), scopeRank(b)), strings.Compare(a, b)) })
			for _, s := range scopes {
				ws := u.Budgets[s]
				names := ordered(ws, func(a, b string) int {
					ia, ib := slices.Index(windowOrder, a), slices.Index(windowOrder, b)
					if ia < 0 {
						ia = len(windowOrder)
					}
					if ib < 0 {
						ib = len(windowOrder)
					}
					return cmp.Or(cmp.Compare(ia, ib), strings.Compare(a, b))
				})
				for _, n := range names {
					win := ws[n]
					name := windowNames[n]
					if name == "" {
						name = clean(n)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clean(s), name, win.Limit, win.Used, win.Remaining, clean(win.Reset))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}

	fmt.Fprintln(w)
	if len(u.Usage) == 0 {
		_, err := fmt.Fprintln(w, "No usage in these days.")
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "DAY\tMODEL\tKEY\tREQUESTS\tPROMPT TOKENS\tCOMPLETION TOKENS\tUSD\tFLAGGED"
	if all {
		head = "DAY\tSUBJECT\tMODEL\tKEY\tREQUESTS\tPROMPT TOKENS\tCOMPLETION TOKENS\tUSD\tFLAGGED"
	}
	fmt.Fprintln(tw, head)
	for _, r := range u.Usage {
		key := "login"
		if r.KeyID != "" {
			key = session.Sanitize(r.KeyID, 16)
		}
		who := ""
		if all {
			who = clean(r.Subject) + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%d\t%d\t%d\t%s\t%d\n", clean(r.Day), who, clean(r.Model), key,
			r.Requests, r.PromptTokens, r.CompletionTokens, session.Sanitize(r.USD, 40), r.Flagged)
	}
	return tw.Flush()
}

// Package budget holds llm-api's token and cost budgets: the budgets file
// (LLM_BUDGETS_FILE), the limits that apply to a caller, and — in the
// files beside this one — the reservation made before a request is proxied
// and settled after its answer, atomically across every scope in Redis.
//
// It does not count requests (the edge's rate limits do) and does not
// tokenize: a request's prompt is reserved by an upper bound (bound.go).
package budget

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmrequest"
	"go.yaml.in/yaml/v3"
)

// ErrInvalidFile wraps every fault of a budgets file. Messages name the
// field (roles.guest.tokens_per_day) and never echo a value.
var ErrInvalidFile = errors.New("invalid budgets file")

// Bounds of the file's values.
const (
	// MaxFileBytes is the largest budgets file read.
	MaxFileBytes = 1 << 20
	// MaxTokens bounds every token figure (a year of 100k tokens/s is
	// ~3.2e12): large enough for any budget, small enough that sums of
	// reservations never overflow an int64 in Redis.
	MaxTokens = int64(1) << 50
	// MaxUSD bounds a USD budget (1e15 nano-USD: exact in the Lua numbers
	// of the Redis scripts, which are doubles, exact to 2^53).
	MaxUSD = 1_000_000
	// MaxUSDPerMillion bounds a price (1e6 nano-USD per token: a request
	// of at most MaxRequestTokens tokens costs less than 2^53 nano-USD).
	MaxUSDPerMillion = 1_000
	// MaxRequestTokens bounds a request's prompt bound and its completion
	// cap × n (larger requests are refused before any reservation).
	MaxRequestTokens = int64(1) << 31
	// maxNameLen bounds role and model names (they become Redis key parts).
	maxNameLen = 128
)

// NanoPerUSD is the unit of every cost: costs are kept exactly, as integer
// nano-USD (1e-9 USD). A price per million tokens has at most three
// decimals (0.001 USD per million = 1 nano-USD per token), a budget at most
// nine. Not pico-USD: the reservation scripts run in Redis's Lua, whose
// numbers are doubles (integers exact to 2^53 ≈ 9e15), and a budget of
// 10,000 USD is already 1e16 pico-USD.
const NanoPerUSD = 1_000_000_000

// Limits are one scope's budgets; 0 means no limit in that window.
type Limits struct {
	// TokensPerMinute is a rate (GCRA, the token count as the cost, as
	// OpenAI's TPM): a bucket of this many tokens, refilled continuously at
	// this many per minute — a burst may take the whole bucket at once, so
	// any 60-second window holds at most twice the limit, and no span of
	// t seconds more than limit × (t + 60) / 60.
	TokensPerMinute int64
	// TokensPerDay and TokensPerMonth are period budgets of UTC calendar
	// days and months (prompt + completion tokens).
	TokensPerDay, TokensPerMonth int64
	// NanoUSDPerDay and NanoUSDPerMonth are cost budgets of the same
	// periods, in nano-USD (the models' prices).
	NanoUSDPerDay, NanoUSDPerMonth int64
}

// Zero reports whether no window is limited.
func (l Limits) Zero() bool { return l == Limits{} }

// Cost reports whether a cost window is limited.
func (l Limits) Cost() bool { return l.NanoUSDPerDay > 0 || l.NanoUSDPerMonth > 0 }

// mostGenerous is the larger of a and b in every window (0, no limit, is
// the largest).
func (l Limits) mostGenerous(o Limits) Limits {
	g := func(a, b int64) int64 {
		if a == 0 || b == 0 {
			return 0
		}
		return max(a, b)
	}
	return Limits{g(l.TokensPerMinute, o.TokensPerMinute), g(l.TokensPerDay, o.TokensPerDay),
		g(l.TokensPerMonth, o.TokensPerMonth), g(l.NanoUSDPerDay, o.NanoUSDPerDay), g(l.NanoUSDPerMonth, o.NanoUSDPerMonth)}
}

// Within reports whether l never allows more than owner in any window (a
// key's budget may not exceed its owner's).
func (l Limits) Within(owner Limits) bool {
	w := func(k, o int64) bool { return o == 0 || (k > 0 && k <= o) }
	return w(l.TokensPerMinute, owner.TokensPerMinute) && w(l.TokensPerDay, owner.TokensPerDay) &&
		w(l.TokensPerMonth, owner.TokensPerMonth) && w(l.NanoUSDPerDay, owner.NanoUSDPerDay) &&
		w(l.NanoUSDPerMonth, owner.NanoUSDPerMonth)
}

// Role is a role's entry: the budgets of each user holding it, the models
// it may use (nil: every model) and per-model budgets of each such user.
type Role struct {
	Limits
	Models      []string
	ModelLimits map[string]Limits
}

// Price is a model's price per token in nano-USD.
type Price struct {
	PromptNano, CompletionNano int64
}

// Model describes how a model's prompts are bounded (package llmrequest):
// its chat template's own tokens, per request and per message, the tokens
// one image part is reserved as (0: images refused) and a factor for
// tokenizers whose normalization expands text (default 1).
type Model struct {
	TemplateTokens, TemplateTokensPerMessage int64
	ImageTokens                              int64
	PromptTokenFactor                        int64
}

// Config is a parsed budgets file.
type Config struct {
	// DefaultMaxCompletionTokens is the completion cap of a request that
	// sets none, clamped to what its scopes still allow.
	DefaultMaxCompletionTokens int64
	// Roles by name; "default" applies to a caller holding none of the
	// others. A caller holding no configured role and no default is
	// refused (403 budget_not_configured): never a free pass.
	Roles map[string]Role
	// Prices by model; a model without a price costs 0.
	Prices map[string]Price
	// Models by name; a model not listed gets llmrequest's defaults and
	// takes no images.
	Models map[string]Model
	// ReservationTimeout is how long a reservation may stay unsettled
	// before the sweep charges it in full (default 15 min; it must exceed
	// the longest upstream exchange).
	ReservationTimeout time.Duration
}

// DefaultReservationTimeout is Config.ReservationTimeout's default.
const DefaultReservationTimeout = 15 * time.Minute

// Defaults of a model's template overhead (generous: they cover ChatML,
// Llama 3.x and Mistral templates with a default system prompt and a tool
// preamble; measure a model's own with vLLM's POST /tokenize on an empty
// conversation and set them in models).
const (
	DefaultTemplateTokens           = llmrequest.DefaultTemplateTokens
	DefaultTemplateTokensPerMessage = llmrequest.DefaultTemplateTokensPerMessage
)

// Options are the model's prompt-bound options for llmrequest.Analyze.
func (c Config) Options(model string) llmrequest.Options {
	m := c.ModelOf(model)
	return llmrequest.Options{TemplateTokens: m.TemplateTokens, TemplateTokensPerMessage: m.TemplateTokensPerMessage,
		ImageTokens: m.ImageTokens, Factor: m.PromptTokenFactor}
}

// ModelOf is the model's entry, defaults when it is not listed.
func (c Config) ModelOf(name string) Model {
	if m, ok := c.Models[name]; ok {
		return m
	}
	return Model{TemplateTokens: DefaultTemplateTokens, TemplateTokensPerMessage: DefaultTemplateTokensPerMessage, PromptTokenFactor: 1}
}

// file is the YAML shape (unknown fields are faults).
type file struct {
	DefaultMaxCompletionTokens *int64              `yaml:"default_max_completion_tokens"`
	ReservationTimeout         string              `yaml:"reservation_timeout"`
	Roles                      map[string]roleFile `yaml:"roles"`
	Prices                     map[string]priceDoc `yaml:"prices"`
	Models                     map[string]modelDoc `yaml:"models"`
}

type modelDoc struct {
	TemplateTokens           *int64 `yaml:"template_tokens"`
	TemplateTokensPerMessage *int64 `yaml:"template_tokens_per_message"`
	ImageTokens              *int64 `yaml:"image_prompt_tokens"`
	PromptTokenFactor        *int64 `yaml:"prompt_token_factor"`
}

type limitsFile struct {
	TokensPerMinute *int64 `yaml:"tokens_per_minute"`
	TokensPerDay    *int64 `yaml:"tokens_per_day"`
	TokensPerMonth  *int64 `yaml:"tokens_per_month"`
	USDPerDay       *usd   `yaml:"usd_per_day"`
	USDPerMonth     *usd   `yaml:"usd_per_month"`
}

type roleFile struct {
	limitsFile  `yaml:",inline"`
	Models      *[]string             `yaml:"models"`
	ModelLimits map[string]limitsFile `yaml:"model_limits"`
}

type priceDoc struct {
	Prompt     *usd `yaml:"prompt_usd_per_million"`
	Completion *usd `yaml:"completion_usd_per_million"`
}

// usd is a decimal USD figure as written (never through a float).
type usd struct{ s string }

func (u *usd) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return fmt.Errorf("line %d: a USD figure must be a number", n.Line)
	}
	u.s = n.Value
	return nil
}

// nano converts u (a budget, or with perMillion a price per million
// tokens) to integer nano-USD; it fails when that is not exact, or the
// figure is not a plain decimal within its bound.
func (u usd) nano(perMillion bool) (int64, error) {
	places, maxWhole := 9, int64(MaxUSD) // nano-USD
	if perMillion {
		places, maxWhole = 3, MaxUSDPerMillion // nano-USD per token = milli-USD per million tokens
	}
	whole, frac, _ := strings.Cut(u.s, ".")
	if !digits(whole) || (strings.Contains(u.s, ".") && !digits(frac)) {
		return 0, errors.New("must be a plain decimal number such as 0.5")
	}
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	if len(whole) > 7 {
		return 0, fmt.Errorf("must be between 0 and %d", maxWhole)
	}
	if len(frac) > places {
		if perMillion {
			return 0, fmt.Errorf("has more than %d decimals (a nano-USD per token is the unit)", places)
		}
		return 0, fmt.Errorf("has more than %d decimals (a nano-USD is the unit)", places)
	}
	var v int64
	for _, d := range whole + frac + strings.Repeat("0", places-len(frac)) {
		v = v*10 + int64(d-'0')
	}
	unit := int64(1)
	for range places {
		unit *= 10
	}
	if v > maxWhole*unit {
		return 0, fmt.Errorf("must be between 0 and %d", maxWhole)
	}
	return v, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Parse reads a budgets file and reports every fault at once (joined,
// each wrapping ErrInvalidFile).
func Parse(r io.Reader) (Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	if len(data) > MaxFileBytes {
		return Config{}, fmt.Errorf("%w: larger than %d bytes", ErrInvalidFile, MaxFileBytes)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%w: empty", ErrInvalidFile)
		}
		return Config{}, fmt.Errorf("%w: %s", ErrInvalidFile, yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: more than one YAML document", ErrInvalidFile)
	}
	return f.config()
}

// yamlError keeps the decoder's line and field information but never a
// value: yaml.v3 quotes the offending scalar in some messages.
func yamlError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var out []string
		for _, e := range te.Errors {
			out = append(out, redactQuoted(e))
		}
		return strings.Join(out, "; ")
	}
	return redactQuoted(err.Error())
}

// redactQuoted drops the quoted scalars yaml.v3 puts in its messages
// ("cannot unmarshal !!str `abc` into int64").
func redactQuoted(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		if r == '`' {
			in = !in
			if in {
				b.WriteString("`…")
			} else {
				b.WriteRune('`')
			}
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// faults collects the file's faults (envconf.Faults), each naming its
// field and wrapping ErrInvalidFile.
type faults struct{ envconf.Faults }

func (f *faults) add(field, format string, args ...any) {
	f.Add(fmt.Errorf("%w: %s: %s", ErrInvalidFile, field, fmt.Sprintf(format, args...)))
}

func (f file) config() (Config, error) {
	var fs faults
	c := Config{Roles: map[string]Role{}, Prices: map[string]Price{}, ReservationTimeout: DefaultReservationTimeout}
	switch {
	case f.DefaultMaxCompletionTokens == nil:
		fs.add("default_max_completion_tokens", "required")
	case *f.DefaultMaxCompletionTokens < 1 || *f.DefaultMaxCompletionTokens > MaxTokens:
		fs.add("default_max_completion_tokens", "must be between 1 and %d", MaxTokens)
	default:
		c.DefaultMaxCompletionTokens = *f.DefaultMaxCompletionTokens
	}
	if f.ReservationTimeout != "" {
		d, err := time.ParseDuration(f.ReservationTimeout)
		if err != nil || d < time.Minute || d > 24*time.Hour {
			fs.add("reservation_timeout", "must be a duration between 1m and 24h")
		} else {
			c.ReservationTimeout = d
		}
	}
	for _, name := range sortedKeys(f.Prices) {
		p := f.Prices[name]
		field := "prices." + name
		if !validName(name) {
			fs.add("prices", "model names are 1-%d printable characters without spaces", maxNameLen)
			continue
		}
		var pr Price
		var err error
		if p.Prompt == nil || p.Completion == nil {
			fs.add(field, "prompt_usd_per_million and completion_usd_per_million are required")
		}
		if p.Prompt != nil {
			if pr.PromptNano, err = p.Prompt.nano(true); err != nil {
				fs.add(field+".prompt_usd_per_million", "%v", err)
			}
		}
		if p.Completion != nil {
			if pr.CompletionNano, err = p.Completion.nano(true); err != nil {
				fs.add(field+".completion_usd_per_million", "%v", err)
			}
		}
		c.Prices[name] = pr
	}
	c.Models = map[string]Model{}
	for _, name := range sortedKeys(f.Models) {
		md := f.Models[name]
		field := "models." + name
		if !validName(name) {
			fs.add("models", "model names are 1-%d printable characters without spaces", maxNameLen)
			continue
		}
		m := Model{TemplateTokens: DefaultTemplateTokens, TemplateTokensPerMessage: DefaultTemplateTokensPerMessage, PromptTokenFactor: 1}
		num := func(key string, v *int64, lo, hi int64, dst *int64) {
			if v == nil {
				return
			}
			if *v < lo || *v > hi {
				fs.add(field+"."+key, "must be between %d and %d", lo, hi)
				return
			}
			*dst = *v
		}
		num("template_tokens", md.TemplateTokens, 0, 1<<20, &m.TemplateTokens)
		num("template_tokens_per_message", md.TemplateTokensPerMessage, 0, 1<<16, &m.TemplateTokensPerMessage)
		num("image_prompt_tokens", md.ImageTokens, 1, 1<<20, &m.ImageTokens)
		num("prompt_token_factor", md.PromptTokenFactor, 1, 32, &m.PromptTokenFactor)
		c.Models[name] = m
	}
	if len(f.Roles) == 0 {
		fs.add("roles", "at least one role is required (a caller holding no configured role is refused)")
	}
	for _, name := range sortedKeys(f.Roles) {
		rf := f.Roles[name]
		field := "roles." + name
		if !validName(name) {
			fs.add("roles", "role names are 1-%d printable characters without spaces", maxNameLen)
			continue
		}
		r := Role{Limits: rf.limitsFile.limits(field, &fs)}
		if rf.Models != nil {
			r.Models = []string{}
			for i, m := range *rf.Models {
				if !validName(m) {
					fs.add(fmt.Sprintf("%s.models[%d]", field, i), "not a model name")
					continue
				}
				if slices.Contains(r.Models, m) {
					fs.add(fmt.Sprintf("%s.models[%d]", field, i), "listed twice")
					continue
				}
				r.Models = append(r.Models, m)
			}
		}
		for _, m := range sortedKeys(rf.ModelLimits) {
			mf := field + ".model_limits." + m
			if !validName(m) {
				fs.add(field+".model_limits", "not a model name")
				continue
			}
			if r.Models != nil && !slices.Contains(r.Models, m) {
				fs.add(mf, "the role may not use this model (not in its models)")
			}
			l := rf.ModelLimits[m].limits(mf, &fs)
			if l.Zero() {
				fs.add(mf, "sets no limit")
				continue
			}
			if r.ModelLimits == nil {
				r.ModelLimits = map[string]Limits{}
			}
			r.ModelLimits[m] = l
		}
		if (r.Limits.Cost() || anyCost(r.ModelLimits)) && len(c.Prices) == 0 {
			fs.add(field, "a USD budget needs prices")
		}
		c.Roles[name] = r
	}
	if err := fs.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func anyCost(m map[string]Limits) bool {
	for _, l := range m {
		if l.Cost() {
			return true
		}
	}
	return false
}

func (lf limitsFile) limits(field string, fs *faults) Limits {
	var l Limits
	tok := func(name string, v *int64, dst *int64) {
		if v == nil {
			return
		}
		if *v < 1 || *v > MaxTokens {
			fs.add(field+"."+name, "must be between 1 and %d (leave it out for no limit)", MaxTokens)
			return
		}
		*dst = *v
	}
	cost := func(name string, v *usd, dst *int64) {
		if v == nil {
			return
		}
		p, err := v.nano(false)
		if err == nil && p == 0 {
			err = errors.New("must be more than 0 (leave it out for no limit)")
		}
		if err != nil {
			fs.add(field+"."+name, "%v", err)
			return
		}
		*dst = p
	}
	tok("tokens_per_minute", lf.TokensPerMinute, &l.TokensPerMinute)
	tok("tokens_per_day", lf.TokensPerDay, &l.TokensPerDay)
	tok("tokens_per_month", lf.TokensPerMonth, &l.TokensPerMonth)
	cost("usd_per_day", lf.USDPerDay, &l.NanoUSDPerDay)
	cost("usd_per_month", lf.USDPerMonth, &l.NanoUSDPerMonth)
	return l
}

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '{' || r == '}' {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DefaultRole is the roles entry for callers holding none of the others.
const DefaultRole = "default"

// Grant is what a caller's roles give it: the most generous budgets of
// its configured roles, the union of their models (nil: every model) and
// per-model budgets (the most generous per model among roles that set
// one; a role allowing the model without a per-model budget lifts it).
type Grant struct {
	Limits      Limits
	Models      []string
	ModelLimits map[string]Limits
}

// Allows reports whether the grant lets its holder use model.
func (g Grant) Allows(model string) bool { return g.Models == nil || slices.Contains(g.Models, model) }

// ErrNoBudget is Grant's answer for a caller holding no configured role
// while the file has no "default" role.
var ErrNoBudget = errors.New("no budget is configured for the caller's roles")

// Grant resolves roles (the caller's, from the edge) to its budgets.
func (c Config) Grant(roles []string) (Grant, error) {
	var held []Role
	for _, r := range roles {
		if r == DefaultRole {
			continue
		}
		if role, ok := c.Roles[r]; ok {
			held = append(held, role)
		}
	}
	if len(held) == 0 {
		role, ok := c.Roles[DefaultRole]
		if !ok {
			return Grant{}, ErrNoBudget
		}
		held = []Role{role}
	}
	g := Grant{Limits: held[0].Limits}
	if held[0].Models != nil {
		g.Models = slices.Clone(held[0].Models)
	}
	for _, r := range held[1:] {
		g.Limits = g.Limits.mostGenerous(r.Limits)
		if g.Models != nil {
			if r.Models == nil {
				g.Models = nil
			} else {
				for _, m := range r.Models {
					if !slices.Contains(g.Models, m) {
						g.Models = append(g.Models, m)
					}
				}
			}
		}
	}
	// per-model budgets: a model is limited only if every held role that
	// allows it limits it (the most generous of those limits)
	for _, r := range held {
		for m := range r.ModelLimits {
			if g.ModelLimits[m] != (Limits{}) {
				continue
			}
			lim, limited := Limits{}, true
			first := true
			for _, o := range held {
				if o.Models != nil && !slices.Contains(o.Models, m) {
					continue // this role does not allow the model at all
				}
				ol, ok := o.ModelLimits[m]
				if !ok {
					limited = false
					break
				}
				if first {
					lim, first = ol, false
				} else {
					lim = lim.mostGenerous(ol)
				}
			}
			if limited && !lim.Zero() {
				if g.ModelLimits == nil {
					g.ModelLimits = map[string]Limits{}
				}
				g.ModelLimits[m] = lim
			}
		}
	}
	if g.Models != nil {
		sort.Strings(g.Models)
	}
	return g, nil
}

// PromptCost is the nano-USD of prompt tokens of model.
func (c Config) PromptCost(model string, tokens int64) int64 {
	return mulSat(c.Prices[model].PromptNano, tokens)
}

// CompletionCost is the nano-USD of completion tokens of model.
func (c Config) CompletionCost(model string, tokens int64) int64 {
	return mulSat(c.Prices[model].CompletionNano, tokens)
}

// mulSat multiplies non-negative a and b, saturating at MaxInt64.
func mulSat(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

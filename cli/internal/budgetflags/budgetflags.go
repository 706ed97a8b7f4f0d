// Package budgetflags is the budget and model flags that "keys create",
// "run" and "budgets set" share — --tokens-per-minute, --tokens-per-day,
// --tokens-per-month, --usd-per-day, --usd-per-month and the repeatable
// --model — checked by llm-api's rules while the flags are parsed (a bad
// value is a usage error: nothing is sent), and the budget as llm-api's
// JSON has it (Limits).
//
// USD figures stay the decimal strings the user wrote, checked digit by
// digit and passed through exactly: never a float, an exponent, a sign or a
// base prefix. Token counts are plain base-10 digits (no "0x10", "1e6",
// "1_000"). It is not the authority: llm-api checks again, and decides what
// lies within the owner's budget.
package budgetflags

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/edgeguard/edgeguard/cli/internal/session"
)

// llm-api's bounds (services/llm-api/internal/budget).
const (
	MaxTokens    int64 = 1 << 50 // a token window's largest limit
	MaxUSD       int64 = 1000000 // a USD window's largest limit
	MaxDecimals        = 9       // a nano-USD is the unit
	MaxModels          = 256     // models in one list
	MaxModelName       = 128     // bytes of a model name
	maxUSDLen          = 32      // llm-api refuses longer figures
	nanoPerUSD   int64 = 1_000_000_000
)

// Limits is a budget as llm-api's JSON has it: every window optional (nil:
// no limit of this budget in that window); USD as exact decimal strings.
// Absent windows are left out of a request ("{}" is never sent: see Empty).
type Limits struct {
	TokensPerMinute *int64  `json:"tokens_per_minute,omitempty"`
	TokensPerDay    *int64  `json:"tokens_per_day,omitempty"`
	TokensPerMonth  *int64  `json:"tokens_per_month,omitempty"`
	USDPerDay       *string `json:"usd_per_day,omitempty"`
	USDPerMonth     *string `json:"usd_per_month,omitempty"`
}

// Empty reports whether no window is limited.
func (l Limits) Empty() bool {
	return l.TokensPerMinute == nil && l.TokensPerDay == nil && l.TokensPerMonth == nil && l.USDPerDay == nil && l.USDPerMonth == nil
}

// Windows lists the limited windows in a fixed order, each as its short
// name (tokens/min, tokens/day, tokens/month, usd/day, usd/month) and its
// value as printable text (server text sanitised).
func (l Limits) Windows() [][2]string {
	var out [][2]string
	tok := func(name string, v *int64) {
		if v != nil {
			out = append(out, [2]string{name, strconv.FormatInt(*v, 10)})
		}
	}
	usd := func(name string, v *string) {
		if v != nil {
			out = append(out, [2]string{name, session.Sanitize(*v, 32)})
		}
	}
	tok("tokens/min", l.TokensPerMinute)
	tok("tokens/day", l.TokensPerDay)
	tok("tokens/month", l.TokensPerMonth)
	usd("usd/day", l.USDPerDay)
	usd("usd/month", l.USDPerMonth)
	return out
}

// String is "tokens/day=200000,usd/day=2.5", or "none" when no window is
// limited.
func (l Limits) String() string {
	w := l.Windows()
	if len(w) == 0 {
		return "none"
	}
	parts := make([]string, len(w))
	for i, kv := range w {
		parts[i] = kv[0] + "=" + kv[1]
	}
	return strings.Join(parts, ",")
}

// Flags are the parsed flags: Limits as given, Models in the order given
// (nil: --model not given).
type Flags struct {
	Limits Limits
	Models []string
}

// Add registers the flags on fs; what says whose budget it is ("the key's",
// "the user's").
func (f *Flags) Add(fs *pflag.FlagSet, what string) {
	fs.Var(&tokens{&f.Limits.TokensPerMinute}, "tokens-per-minute", what+" token limit per minute (1..2^50)")
	fs.Var(&tokens{&f.Limits.TokensPerDay}, "tokens-per-day", what+" token limit per UTC day")
	fs.Var(&tokens{&f.Limits.TokensPerMonth}, "tokens-per-month", what+" token limit per UTC month")
	fs.Var(&usd{&f.Limits.USDPerDay}, "usd-per-day", what+" cost limit per UTC day, a decimal such as 2.5 (at most 9 decimals)")
	fs.Var(&usd{&f.Limits.USDPerMonth}, "usd-per-month", what+" cost limit per UTC month, a decimal such as 20")
	fs.Var(&models{&f.Models}, "model", "a model "+what+" requests may use (repeat the flag for more; default: "+defaultModels(what)+")")
}

func defaultModels(what string) string {
	if strings.Contains(what, "user") {
		return "the roles' models"
	}
	return "the owner's models"
}

// Given reports whether any of the flags was given.
func (f *Flags) Given() bool { return !f.Limits.Empty() || f.Models != nil }

// tokens is a token-limit flag.
type tokens struct{ p **int64 }

func (t *tokens) String() string {
	if t.p == nil || *t.p == nil {
		return ""
	}
	return strconv.FormatInt(**t.p, 10)
}
func (t *tokens) Type() string { return "N" }
func (t *tokens) Set(s string) error {
	n, err := ParseTokens(s)
	if err != nil {
		return err
	}
	*t.p = &n
	return nil
}

// usd is a USD-limit flag.
type usd struct{ p **string }

func (u *usd) String() string {
	if u.p == nil || *u.p == nil {
		return ""
	}
	return **u.p
}
func (u *usd) Type() string { return "USD" }
func (u *usd) Set(s string) error {
	if _, err := ParseUSD(s); err != nil {
		return err
	}
	*u.p = &s
	return nil
}

// models is the repeatable --model flag: one model per flag (model names
// may hold commas).
type models struct{ p *[]string }

func (m *models) String() string {
	if m.p == nil || *m.p == nil {
		return ""
	}
	return "[" + strings.Join(*m.p, " ") + "]"
}
func (m *models) Type() string { return "MODEL" }
func (m *models) Set(s string) error {
	if err := CheckModel(s); err != nil {
		return err
	}
	if slices.Contains(*m.p, s) {
		return errors.New("given twice")
	}
	if len(*m.p) == MaxModels {
		return fmt.Errorf("at most %d models", MaxModels)
	}
	*m.p = append(*m.p, s)
	return nil
}

// Errors of the parsers (never with the value).
var (
	ErrNotDigits  = errors.New("not plain decimal digits (no sign, exponent, base prefix or separator)")
	ErrOutOfRange = errors.New("out of range")
)

// ParseTokens parses a token limit: base-10 ASCII digits only, 1..MaxTokens.
func ParseTokens(s string) (int64, error) {
	if !digits(s) {
		return 0, fmt.Errorf("%w: give a whole number such as 200000", ErrNotDigits)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > uint64(MaxTokens) {
		return 0, fmt.Errorf("%w: must be between 1 and %d (leave the flag out for no limit)", ErrOutOfRange, MaxTokens)
	}
	return int64(n), nil
}

// ParseUSD checks a USD limit as llm-api does and returns it in nano-USD:
// ASCII digits with at most one '.' between digits ("2.5", "0.000000001",
// "20"; not ".5", "5.", "+1", "-1", "1e9", "0x10", "1,5", other scripts'
// digits), more than 0, at most MaxUSD, at most MaxDecimals decimals once
// trailing zeros are dropped, at most 32 bytes. The value is computed
// digit by digit: no float anywhere.
func ParseUSD(s string) (int64, error) {
	if len(s) > maxUSDLen {
		return 0, fmt.Errorf("%w (at most %d characters)", ErrNotDigits, maxUSDLen)
	}
	whole, frac, dot := strings.Cut(s, ".")
	if !digits(whole) || (dot && !digits(frac)) {
		return 0, fmt.Errorf("%w: give a decimal number such as 2.5", ErrNotDigits)
	}
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	if len(frac) > MaxDecimals {
		return 0, fmt.Errorf("%w: more than %d decimals (a nano-USD is the unit)", ErrOutOfRange, MaxDecimals)
	}
	if len(whole) > 7 {
		return 0, fmt.Errorf("%w: must be at most %d", ErrOutOfRange, MaxUSD)
	}
	var v int64
	for _, d := range whole + frac + strings.Repeat("0", MaxDecimals-len(frac)) {
		v = v*10 + int64(d-'0')
	}
	switch {
	case v == 0:
		return 0, fmt.Errorf("%w: must be more than 0 (leave the flag out for no limit)", ErrOutOfRange)
	case v > MaxUSD*nanoPerUSD:
		return 0, fmt.Errorf("%w: must be at most %d", ErrOutOfRange, MaxUSD)
	}
	return v, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckModel checks a model name as llm-api does: 1..MaxModelName bytes of
// valid UTF-8, no spaces, control or format characters, no braces.
func CheckModel(s string) error {
	if s == "" || len(s) > MaxModelName || !utf8.ValidString(s) {
		return fmt.Errorf("a model name is 1-%d bytes of UTF-8", MaxModelName)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '{' || r == '}' || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return errors.New("a model name has no spaces, braces, control or format characters")
		}
	}
	return nil
}

package budget

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxModels bounds a models list given through the API (an override's, an
// API key's).
const MaxModels = 256

// FieldError is a refused budget given through the API (an administrator's
// override, an API key's own budget): the field, named as the API names it
// (tokens_per_day, usd_per_month, models), and why — never the value.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// LimitsInput is a budget as the API takes it: every window optional (nil:
// no limit in that window), USD figures as decimal strings ("12.5").
type LimitsInput struct {
	TokensPerMinute, TokensPerDay, TokensPerMonth *int64
	USDPerDay, USDPerMonth                        *string
}

// Limits checks in by the budgets file's rules — tokens 1..MaxTokens, USD
// more than 0 and at most MaxUSD with at most nine decimals (ParseUSD) —
// and converts it. A refusal is a *FieldError (the first field in the
// order above).
func (in LimitsInput) Limits() (Limits, error) {
	var l Limits
	tok := func(name string, v *int64, dst *int64) error {
		if v == nil {
			return nil
		}
		if *v < 1 || *v > MaxTokens {
			return &FieldError{name, fmt.Sprintf("must be between 1 and %d (leave it out for no limit)", MaxTokens)}
		}
		*dst = *v
		return nil
	}
	cost := func(name string, v *string, dst *int64) error {
		if v == nil {
			return nil
		}
		n, err := ParseUSD(*v)
		if err == nil && n == 0 {
			err = errors.New("must be more than 0 (leave it out for no limit)")
		}
		if err != nil {
			return &FieldError{name, err.Error()}
		}
		*dst = n
		return nil
	}
	err := errors.Join(
		tok("tokens_per_minute", in.TokensPerMinute, &l.TokensPerMinute),
		tok("tokens_per_day", in.TokensPerDay, &l.TokensPerDay),
		tok("tokens_per_month", in.TokensPerMonth, &l.TokensPerMonth),
		cost("usd_per_day", in.USDPerDay, &l.NanoUSDPerDay),
		cost("usd_per_month", in.USDPerMonth, &l.NanoUSDPerMonth),
	)
	if err != nil {
		var fe *FieldError
		errors.As(err, &fe) // the first
		return Limits{}, fe
	}
	return l, nil
}

// ParseUSD converts a USD budget written as a plain decimal ("12.5",
// "0.000000001") to nano-USD exactly, never through a float: at most nine
// decimals (a nano-USD is the unit), 0..MaxUSD. The message of a refusal
// never repeats the value.
func ParseUSD(s string) (int64, error) {
	if len(s) > 32 {
		return 0, errors.New("must be a plain decimal number such as 0.5")
	}
	return usd{s}.nano(false)
}

// CheckModels checks a models list given through the API: 1..MaxModels
// model names (1-128 printable characters without spaces or braces), none
// twice. An empty list is refused: it would read as "every model" in
// Redis; leave the list out instead.
func CheckModels(models []string) error {
	switch {
	case len(models) == 0:
		return &FieldError{"models", "must list at least one model (leave it out for no restriction)"}
	case len(models) > MaxModels:
		return &FieldError{"models", fmt.Sprintf("at most %d models", MaxModels)}
	}
	for i, m := range models {
		if !validName(m) || !utf8.ValidString(m) || strings.ContainsFunc(m, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			return &FieldError{"models", fmt.Sprintf("models[%d] is not a model name (1-%d printable characters without spaces)", i, maxNameLen)}
		}
		if slices.Contains(models[:i], m) {
			return &FieldError{"models", fmt.Sprintf("models[%d] is listed twice", i)}
		}
	}
	return nil
}

// MaxSubjectLen bounds a subject named through the API.
const MaxSubjectLen = 128

// ValidSubject reports whether s may name a user in the API (a path
// segment, a query parameter): 1..MaxSubjectLen bytes of
// [A-Za-z0-9._:@-], not starting with a dot — Keycloak's subjects (UUIDs,
// "f:<provider>:<user>") and nothing a path or a Redis key could misread
// ("..", "/", "{", "}", spaces, control characters, other scripts).
func ValidSubject(s string) bool {
	if s == "" || len(s) > MaxSubjectLen || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' || c == '@') {
			return false
		}
	}
	return true
}

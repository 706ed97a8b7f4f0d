package budgetflags

import (
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// usdAttacks are USD figures a float parser, strconv with base 0, or a
// unicode-aware digit test would take, and llm-api refuses.
var usdAttacks = []string{
	"", " ", "1e9", "1E2", "1e-3", "-1", "+1", "-0.5", "0x10", "0X1p4", "0o17", "0b101", "1_000", "1,5", "1 000",
	"1.0000000001", "0.0000000001", "0.0000000005", ".5", "5.", ".", "..", "1.2.3", "1..2", " 1", "1 ", "1\n", "\t1",
	"Inf", "+Inf", "NaN", "nan", "infinity", "0", "0.0", "00", "0.000000000", "1000000.000000001", "1000001",
	"99999999", "10000000", "18446744073709551617", "9223372036854775807",
	"١", "١٢", "１", "1２", "٣.٥", "𝟏", "¹", "½", "1\u200b", "\u202e1", "1\x00", "1\x1b[2J",
	strings.Repeat("0", 32) + "1", "0." + strings.Repeat("0", 31), "1" + strings.Repeat("0", 40),
}

func TestUSDFlagRefusesWhatLLMAPIRefuses(t *testing.T) {
	for _, s := range usdAttacks {
		if n, err := ParseUSD(s); err == nil {
			t.Errorf("ParseUSD(%q) = %d, want a refusal", s, n)
		} else if s != "" && strings.TrimSpace(s) != "" && len(s) > 2 && strings.Contains(err.Error(), s) {
			t.Errorf("ParseUSD(%q): the error repeats the value: %v", s, err)
		}
	}
}

func TestUSDFlagTakesExactDecimals(t *testing.T) {
	for s, nano := range map[string]int64{
		"2.5":                 2_500_000_000,
		"20":                  20_000_000_000,
		"0.000000001":         1,
		"0.1":                 100_000_000,
		"1.0000000000":        1_000_000_000, // trailing zeros are not decimals (llm-api: the same)
		"007.50":              7_500_000_000,
		"1000000":             1_000_000_000_000_000,
		"999999.999999999":    999_999_999_999_999,
		"0.30000000000000000": 300_000_000, // 0.1+0.2 in a float would not be
	} {
		got, err := ParseUSD(s)
		if err != nil || got != nano {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", s, got, err, nano)
		}
	}
}

func TestTokenFlags(t *testing.T) {
	for s, want := range map[string]int64{"1": 1, "200000": 200000, "0020": 20, "1125899906842624": MaxTokens} {
		if got, err := ParseTokens(s); err != nil || got != want {
			t.Errorf("ParseTokens(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "-1", "+1", "1e6", "0x10", "0o7", "1_000", "1.0", "1,000", " 1", "1125899906842625",
		"18446744073709551616", "٣", "１", "1\x00"} {
		if n, err := ParseTokens(s); err == nil {
			t.Errorf("ParseTokens(%q) = %d, want a refusal", s, n)
		}
	}
}

func TestModelNames(t *testing.T) {
	for _, ok := range []string{"qwen2.5-7b", "meta/llama-3.1-70b", "a,b", "é", strings.Repeat("m", 128)} {
		if err := CheckModel(ok); err != nil {
			t.Errorf("CheckModel(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a\tb", "{x}", "a\x7f", "\x1b[2J", "a\u200bb", "a\u202eb", strings.Repeat("m", 129), "\xff"} {
		if CheckModel(bad) == nil {
			t.Errorf("CheckModel(%q) accepted", bad)
		}
	}
}

// The flags as commands parse them: only what was given ends up in the
// JSON, USD exactly as written; a bad value fails the parse (a usage error).
func TestFlagsGiveTheAPIsBudgetObject(t *testing.T) {
	parse := func(args ...string) (*Flags, error) {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		f := &Flags{}
		f.Add(fs, "the key's")
		return f, fs.Parse(args)
	}
	f, err := parse()
	if err != nil || f.Given() || f.Models != nil || f.Limits.String() != "none" {
		t.Fatalf("no flags: %+v %v", f, err)
	}
	f, err = parse("--tokens-per-day", "200000", "--usd-per-day", "2.50", "--model", "qwen2.5-7b", "--model", "a,b", "--tokens-per-minute=20000")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(f.Limits)
	if string(b) != `{"tokens_per_minute":20000,"tokens_per_day":200000,"usd_per_day":"2.50"}` || strings.Join(f.Models, "|") != "qwen2.5-7b|a,b" {
		t.Fatalf("budget %s models %q", b, f.Models)
	}
	if f.Limits.String() != "tokens/min=20000,tokens/day=200000,usd/day=2.50" {
		t.Errorf("String: %s", f.Limits.String())
	}
	for _, args := range [][]string{
		{"--usd-per-month", "1e9"}, {"--usd-per-day", "-1"}, {"--tokens-per-day", "0x10"}, {"--tokens-per-month", "-5"},
		{"--usd-per-day", "1.0000000001"}, {"--usd-per-day", "١"}, {"--tokens-per-day", ""}, {"--model", ""},
		{"--model", "a", "--model", "a"}, {"--model", "two words"},
	} {
		if _, err := parse(args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// plainDecimal is the reference grammar: what llm-api's parser reads.
var plainDecimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// FuzzParseUSD checks ParseUSD against an independent oracle (big.Rat):
// accepted exactly when s is a plain ASCII decimal of at most 32 bytes
// with 0 < value <= 1000000 and at most 9 significant decimals, and then
// the nano-USD value is exact.
func FuzzParseUSD(f *testing.F) {
	for _, s := range usdAttacks {
		f.Add(s)
	}
	for _, s := range []string{"2.5", "20", "0.000000001", "1000000", "1000000.0", "999999.999999999", "007.50"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseUSD(s)
		want, ok := oracle(s)
		if ok != (err == nil) {
			t.Fatalf("ParseUSD(%q): err %v, oracle accepts %t", s, err, ok)
		}
		if ok && got != want {
			t.Fatalf("ParseUSD(%q) = %d, oracle %d", s, got, want)
		}
		if err != nil && !errors.Is(err, ErrNotDigits) && !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("ParseUSD(%q): unclassified error %v", s, err)
		}
	})
}

func oracle(s string) (int64, bool) {
	if len(s) > 32 || !plainDecimal.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	nano := new(big.Rat).Mul(r, big.NewRat(1_000_000_000, 1))
	if !nano.IsInt() || nano.Sign() <= 0 || nano.Cmp(big.NewRat(1_000_000_000_000_000, 1)) > 0 {
		return 0, false
	}
	return nano.Num().Int64(), true
}

package budget

import (
	"errors"
	"strings"
	"testing"
)

func TestLimitsInputFollowsTheFileRules(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	s := func(v string) *string { return &v }
	for name, c := range map[string]struct {
		in    LimitsInput
		want  Limits
		field string
	}{
		"empty":               {in: LimitsInput{}},
		"every window":        {in: LimitsInput{i(1), i(2), i(3), s("0.5"), s("1000000")}, want: Limits{1, 2, 3, 500_000_000, MaxUSD * NanoPerUSD}},
		"nano":                {in: LimitsInput{USDPerDay: s("0.000000001")}, want: Limits{NanoUSDPerDay: 1}},
		"trailing zeros":      {in: LimitsInput{USDPerDay: s("1.50000000000")}, want: Limits{NanoUSDPerDay: 1_500_000_000}},
		"zero tokens":         {in: LimitsInput{TokensPerDay: i(0)}, field: "tokens_per_day"},
		"negative":            {in: LimitsInput{TokensPerMinute: i(-1)}, field: "tokens_per_minute"},
		"beyond MaxTokens":    {in: LimitsInput{TokensPerMonth: i(MaxTokens + 1)}, field: "tokens_per_month"},
		"zero USD":            {in: LimitsInput{USDPerMonth: s("0.000")}, field: "usd_per_month"},
		"ten decimals":        {in: LimitsInput{USDPerDay: s("0.0000000001")}, field: "usd_per_day"},
		"exponent":            {in: LimitsInput{USDPerDay: s("1e3")}, field: "usd_per_day"},
		"negative USD":        {in: LimitsInput{USDPerDay: s("-1")}, field: "usd_per_day"},
		"above MaxUSD":        {in: LimitsInput{USDPerDay: s("1000000.000000001")}, field: "usd_per_day"},
		"spaces":              {in: LimitsInput{USDPerDay: s(" 1")}, field: "usd_per_day"},
		"empty string":        {in: LimitsInput{USDPerDay: s("")}, field: "usd_per_day"},
		"unicode digits":      {in: LimitsInput{USDPerDay: s("١")}, field: "usd_per_day"},
		"overlong":            {in: LimitsInput{USDPerDay: s(strings.Repeat("0", 10000) + "1")}, field: "usd_per_day"},
		"the first fault":     {in: LimitsInput{TokensPerDay: i(0), USDPerDay: s("x")}, field: "tokens_per_day"},
		"NaN-like":            {in: LimitsInput{USDPerMonth: s("NaN")}, field: "usd_per_month"},
		"a dot alone":         {in: LimitsInput{USDPerMonth: s(".")}, field: "usd_per_month"},
		"leading dot":         {in: LimitsInput{USDPerMonth: s(".5")}, field: "usd_per_month"},
		"hex":                 {in: LimitsInput{USDPerMonth: s("0x10")}, field: "usd_per_month"},
		"MaxTokens is usable": {in: LimitsInput{TokensPerMinute: i(MaxTokens)}, want: Limits{TokensPerMinute: MaxTokens}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := c.in.Limits()
			var fe *FieldError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.field == "" && got != c.want:
				t.Fatalf("%+v, want %+v", got, c.want)
			case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field):
				t.Fatalf("%v, want a refusal of %s", err, c.field)
			case c.field != "" && strings.Contains(err.Error(), "0000000000"):
				t.Fatalf("the message repeats the value: %v", err)
			}
		})
	}
}

func TestCheckModels(t *testing.T) {
	long := strings.Repeat("m", 129)
	for name, c := range map[string]struct {
		models []string
		ok     bool
	}{
		"one":          {[]string{"small"}, true},
		"org/model:7b": {[]string{"org/model:7b", "x"}, true},
		"empty":        {[]string{}, false},
		"nil":          {nil, false},
		"twice":        {[]string{"a", "a"}, false},
		"space":        {[]string{"a b"}, false},
		"newline":      {[]string{"a\nb"}, false},
		"brace":        {[]string{"a}"}, false},
		"too long":     {[]string{long}, false},
		"bad utf-8":    {[]string{"\xff"}, false},
		"bidi control": {[]string{"a\u202eb"}, false},
		"C1 control":   {[]string{"a\u0085"}, false},
		"too many":     {make([]string, MaxModels+1), false},
	} {
		err := CheckModels(c.models)
		var fe *FieldError
		if c.ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "models")) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"0", "0.5", "1000000", "1000000.000000001", "1e3", "-1", "", ".", "00000000001.1", "١", "0.0000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseUSD(s)
		if err != nil {
			if strings.Contains(err.Error(), s) && len(s) > 3 {
				t.Fatalf("the message repeats the value: %v", err)
			}
			return
		}
		if n < 0 || n > MaxUSD*NanoPerUSD {
			t.Fatalf("%q → %d", s, n)
		}
	})
}

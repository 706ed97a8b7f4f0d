package budget

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// issueExample is the budgets file the issue says must work as written.
const issueExample = `default_max_completion_tokens: 512
roles:
  guest: {tokens_per_minute: 2000, tokens_per_day: 20000, models: [stub-model]}
  user:  {tokens_per_minute: 20000, tokens_per_day: 1000000}
prices:
  stub-model: {prompt_usd_per_million: 0.5, completion_usd_per_million: 1.5}
`

func TestTheIssuesExampleParsesAsWritten(t *testing.T) {
	c, err := Parse(strings.NewReader(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DefaultMaxCompletionTokens: 512,
		ReservationTimeout:         DefaultReservationTimeout,
		Models:                     map[string]Model{},
		Roles: map[string]Role{
			"guest": {Limits: Limits{TokensPerMinute: 2000, TokensPerDay: 20000}, Models: []string{"stub-model"}},
			"user":  {Limits: Limits{TokensPerMinute: 20000, TokensPerDay: 1000000}},
		},
		// 0.5 USD per million tokens = 500 nano-USD per token
		Prices: map[string]Price{"stub-model": {PromptNano: 500, CompletionNano: 1_500}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func TestEveryFieldParses(t *testing.T) {
	c, err := Parse(strings.NewReader(`
default_max_completion_tokens: 256
reservation_timeout: 5m
roles:
  default: {tokens_per_day: 100}
  user:
    tokens_per_minute: 1000
    tokens_per_day: 10000
    tokens_per_month: 100000
    usd_per_day: 2.5
    usd_per_month: 0.000000001
    models: [a, "org/b:7b"]
    model_limits:
      a: {tokens_per_day: 50, usd_per_month: 1}
prices:
  a: {prompt_usd_per_million: 3, completion_usd_per_million: 0.001}
  "org/b:7b": {prompt_usd_per_million: 0, completion_usd_per_million: 0}
models:
  a: {template_tokens: 40, template_tokens_per_message: 5, image_prompt_tokens: 1500}
`))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Roles["user"]
	if u.Limits != (Limits{1000, 10000, 100000, 2_500_000_000, 1}) {
		t.Errorf("user limits %+v", u.Limits)
	}
	if u.ModelLimits["a"] != (Limits{TokensPerDay: 50, NanoUSDPerMonth: NanoPerUSD}) {
		t.Errorf("model limits %+v", u.ModelLimits)
	}
	if c.Prices["a"] != (Price{PromptNano: 3_000, CompletionNano: 1}) {
		t.Errorf("price %+v", c.Prices["a"])
	}
	if c.ModelOf("a") != (Model{40, 5, 1500, 1}) || c.ModelOf("unlisted") != (Model{DefaultTemplateTokens, DefaultTemplateTokensPerMessage, 0, 1}) {
		t.Errorf("models %+v %+v", c.ModelOf("a"), c.ModelOf("unlisted"))
	}
	if c.ReservationTimeout != 5*time.Minute || c.DefaultMaxCompletionTokens != 256 {
		t.Errorf("%v %d", c.ReservationTimeout, c.DefaultMaxCompletionTokens)
	}
}

// TestEveryFaultIsReported: one start reports all of a file's faults, each
// naming its field and never echoing the value.
func TestEveryFaultIsReported(t *testing.T) {
	_, err := Parse(strings.NewReader(`
default_max_completion_tokens: 0
reservation_timeout: 2s
roles:
  user:
    tokens_per_minute: -5
    tokens_per_day: 0
    usd_per_day: 0.0000000001
    models: [a, a, "bad name"]
    model_limits:
      z: {tokens_per_day: 3}
      a: {}
prices:
  a: {prompt_usd_per_million: 0.0001, completion_usd_per_million: 1.5}
  b: {prompt_usd_per_million: 1}
  c: {prompt_usd_per_million: 2000000, completion_usd_per_million: "SECRETVALUE"}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	if !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("not ErrInvalidFile: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "SECRETVALUE") {
		t.Fatalf("a value was echoed: %s", msg)
	}
	// a type error stops the decoder before the semantic checks: check it alone
	if !strings.Contains(msg, "line") {
		t.Errorf("the type fault has no line: %s", msg)
	}
	_, err = Parse(strings.NewReader(`
default_max_completion_tokens: 0
reservation_timeout: 2s
roles:
  user:
    tokens_per_minute: -5
    tokens_per_day: 0
    usd_per_day: 0.0000000001
    models: [a, a, "bad name"]
    model_limits:
      z: {tokens_per_day: 3}
      a: {}
prices:
  a: {prompt_usd_per_million: 0.0001, completion_usd_per_million: 1.5}
  b: {prompt_usd_per_million: 1}
  c: {prompt_usd_per_million: 2000000, completion_usd_per_million: 1e-6}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	msg = err.Error()
	for _, want := range []string{
		"default_max_completion_tokens: must be between",
		"reservation_timeout: must be a duration",
		"roles.user.tokens_per_minute: must be between",
		"roles.user.tokens_per_day: must be between",
		"roles.user.usd_per_day: has more than 9 decimals",
		"roles.user.models[1]: listed twice",
		"roles.user.models[2]: not a model name",
		"roles.user.model_limits.z: the role may not use this model",
		"roles.user.model_limits.a: sets no limit",
		"prices.a.prompt_usd_per_million: has more than 3 decimals",
		"prices.b: prompt_usd_per_million and completion_usd_per_million are required",
		"prices.c.prompt_usd_per_million: must be between 0 and 1000",
		"prices.c.completion_usd_per_million: must be a plain decimal",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing fault %q in:\n%s", want, msg)
		}
	}
}

func TestFileShapeFaults(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":              "",
		"unknown field":      "default_max_completion_tokens: 5\nroles: {user: {}}\ntokens: 5\n",
		"unknown limit":      "default_max_completion_tokens: 5\nroles: {user: {requests_per_minute: 5}}\n",
		"no roles":           "default_max_completion_tokens: 5\n",
		"two documents":      "default_max_completion_tokens: 5\nroles: {user: {}}\n---\na: 1\n",
		"not a mapping":      "- 1\n",
		"usd as string":      "default_max_completion_tokens: 5\nroles: {user: {usd_per_day: '5'}}\n",
		"usd without prices": "default_max_completion_tokens: 5\nroles: {user: {usd_per_day: 5}}\n",
		"too large":          strings.Repeat("#", MaxFileBytes+1),
		"anchors bomb":       "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(doc)); !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("%v", err)
			}
		})
	}
}

func TestGrantTakesTheMostGenerousOfTheCallersRoles(t *testing.T) {
	c, err := Parse(strings.NewReader(`
default_max_completion_tokens: 100
roles:
  guest: {tokens_per_minute: 2000, tokens_per_day: 20000, models: [small], model_limits: {small: {tokens_per_day: 500}}}
  user:  {tokens_per_minute: 20000, tokens_per_day: 1000000, models: [small, large], model_limits: {large: {tokens_per_day: 9000}}}
  power: {tokens_per_minute: 1000, models: [large], model_limits: {large: {tokens_per_day: 10000}}}
  admin: {}
prices: {small: {prompt_usd_per_million: 1, completion_usd_per_million: 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		roles []string
		want  Grant
		err   error
	}{
		{"guest", []string{"guest"}, Grant{Limits{2000, 20000, 0, 0, 0}, []string{"small"}, map[string]Limits{"small": {TokensPerDay: 500}}}, nil},
		{"user and guest: user's budgets, small unlimited per model (user allows it without one)",
			[]string{"guest", "user", "unknown"}, Grant{Limits{20000, 1000000, 0, 0, 0}, []string{"large", "small"}, map[string]Limits{"large": {TokensPerDay: 9000}}}, nil},
		{"user and power: per window the larger, no day limit from power",
			[]string{"power", "user"}, Grant{Limits{20000, 0, 0, 0, 0}, []string{"large", "small"}, map[string]Limits{"large": {TokensPerDay: 10000}}}, nil},
		{"admin: no limit at all", []string{"admin", "guest"}, Grant{Limits{}, nil, nil}, nil},
		{"no configured role and no default", []string{"offline_access"}, Grant{}, ErrNoBudget},
		{"no roles", nil, Grant{}, ErrNoBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := c.Grant(tt.roles)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(g, tt.want) {
				t.Fatalf("got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestDefaultRoleAppliesToCallersWithoutAConfiguredRole(t *testing.T) {
	c, err := Parse(strings.NewReader("default_max_completion_tokens: 5\nroles: {default: {tokens_per_day: 7}, user: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.Grant([]string{"offline_access"})
	if err != nil || g.Limits.TokensPerDay != 7 {
		t.Fatalf("%+v %v", g, err)
	}
	if g, _ := c.Grant([]string{"user"}); !g.Limits.Zero() {
		t.Fatalf("a configured role also got the default: %+v", g)
	}
}

func TestKeyLimitsWithinTheOwners(t *testing.T) {
	owner := Limits{TokensPerMinute: 100, TokensPerDay: 1000}
	for _, tt := range []struct {
		key  Limits
		want bool
	}{
		{Limits{TokensPerMinute: 100, TokensPerDay: 1000}, true},
		{Limits{TokensPerMinute: 10, TokensPerDay: 5, NanoUSDPerDay: 3}, true},
		{Limits{TokensPerMinute: 101, TokensPerDay: 5}, false},
		{Limits{TokensPerDay: 5}, false}, // no TPM on the key = unlimited > 100
		{Limits{}, false},
	} {
		if got := tt.key.Within(owner); got != tt.want {
			t.Errorf("%+v within %+v: %v", tt.key, owner, got)
		}
	}
	if !(Limits{TokensPerDay: 5}).Within(Limits{}) {
		t.Error("anything is within an unlimited owner")
	}
}

package budget

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTheRepositorysBudgetsFilesParse: make dev's file and the one the
// deployments start from are valid, and the deployments' file keeps every
// role of realm jan budgeted (a caller with no budget is refused).
func TestTheRepositorysBudgetsFilesParse(t *testing.T) {
	for _, f := range []string{"dev.yaml", "production.example.yaml"} {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "config", "budgets", f))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			for _, role := range []string{"guest", "user", "admin"} {
				if _, err := c.Grant([]string{role}); err != nil {
					t.Errorf("role %s: %v", role, err)
				}
			}
		})
	}
}

// FuzzParse: any file is a Config or an error wrapping ErrInvalidFile —
// never a panic, never a value echoed in the error.
func FuzzParse(f *testing.F) {
	f.Add([]byte(issueExample))
	for _, s := range []string{
		"default_max_completion_tokens: 1\nroles: {a: {usd_per_day: 0.000000001}}\nprices: {m: {prompt_usd_per_million: 1000, completion_usd_per_million: 0.001}}\n",
		"default_max_completion_tokens: 9223372036854775807\nroles: {a: {}}\n",
		"default_max_completion_tokens: 1\nroles: {a: {usd_per_day: 1e308}}\n",
		"default_max_completion_tokens: 1\nroles: {a: {usd_per_day: .nan}}\n",
		"default_max_completion_tokens: 1\nroles: {\"{tag}\": {}}\n",
		"a: &a [*a]\n",
		"default_max_completion_tokens: !!binary AAAA\n",
		"default_max_completion_tokens: 1\nroles: {a: {models: [\"x\\ny\"]}}\n",
		"---\n---\n",
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(bytes.NewReader(in))
		if err != nil {
			if !strings.Contains(err.Error(), ErrInvalidFile.Error()) {
				t.Fatalf("an error that is not ErrInvalidFile: %v", err)
			}
			return
		}
		if c.DefaultMaxCompletionTokens < 1 || len(c.Roles) == 0 {
			t.Fatalf("accepted %+v", c)
		}
		for name, r := range c.Roles {
			if !validName(name) {
				t.Fatalf("role name %q accepted", name)
			}
			for _, v := range []int64{r.TokensPerMinute, r.TokensPerDay, r.TokensPerMonth, r.NanoUSDPerDay, r.NanoUSDPerMonth} {
				if v < 0 || v > MaxTokens && v > MaxUSD*NanoPerUSD {
					t.Fatalf("limit %d accepted", v)
				}
			}
			for _, m := range r.Models {
				if !validName(m) {
					t.Fatalf("model %q accepted", m)
				}
			}
		}
		for _, p := range c.Prices {
			if p.PromptNano < 0 || p.PromptNano > MaxUSDPerMillion*1000 || p.CompletionNano < 0 || p.CompletionNano > MaxUSDPerMillion*1000 {
				t.Fatalf("price %+v accepted", p)
			}
		}
	})
}

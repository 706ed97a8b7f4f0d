package metering

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// monitoring is deploy/monitoring, from this package.
var monitoring = filepath.Join("..", "..", "..", "..", "deploy", "monitoring")

// llmMetrics are the names and label names of llm-api's budget and ledger
// collectors, read from their descriptors.
func llmMetrics(t *testing.T) map[string][]string {
	t.Helper()
	w := ledger.NewWriter(nil, zerolog.Nop())
	defer w.Close()
	m := NewMetrics()
	cs := append([]prometheus.Collector{m.Tokens, m.Reservations, m.Denials, m.Settlements, m.Overshoot}, w.Collectors()...)
	desc := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			sm := desc.FindStringSubmatch(d.String())
			if sm == nil {
				t.Fatalf("unreadable descriptor %s", d)
			}
			var labels []string
			for _, l := range strings.Split(sm[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			out[sm[1]] = labels
		}
	}
	return out
}

// monitoringExprs are the dashboard's queries and the alert rules'
// expressions.
func monitoringExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(monitoring, "grafana", "edgeguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	raw, err = os.ReadFile(filepath.Join(monitoring, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string } `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// TestMonitoringUsesMeteringsMetrics: every edgeguard_llm_ series the
// dashboard and the alerts read is one llm-api registers, with the labels
// it has (plus the scrape's job and instance), and each of llm-api's budget
// metrics is shown somewhere. (The plugin servers' and services' other
// metrics: plugins/internal/pluginmetrics TestMonitoringUsesOnlyRegisteredMetrics.)
func TestMonitoringUsesMeteringsMetrics(t *testing.T) {
	reg := llmMetrics(t)
	metric := regexp.MustCompile(`edgeguard_llm_[a-z_]+`)
	matchers := regexp.MustCompile(`edgeguard_llm_[a-z_]+\{([^}]*)\}`)
	grouping := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	used := map[string]bool{}
	for _, e := range monitoringExprs(t) {
		names := metric.FindAllString(e, -1)
		if len(names) == 0 {
			continue
		}
		allowed := []string{"job", "instance"}
		for _, n := range names {
			labels, ok := reg[n]
			if !ok {
				t.Errorf("%q: %s is not a metric llm-api registers (%v)", e, n, keys(reg))
				continue
			}
			used[n] = true
			allowed = append(allowed, labels...)
		}
		var labels []string
		for _, m := range matchers.FindAllStringSubmatch(e, -1) {
			for _, part := range strings.Split(m[1], ",") {
				if name, _, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
					labels = append(labels, strings.TrimRight(strings.TrimSpace(name), "!~"))
				}
			}
		}
		for _, g := range grouping.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(g[1], ",") {
				labels = append(labels, strings.TrimSpace(l))
			}
		}
		for _, l := range labels {
			if l != "" && !slices.Contains(allowed, l) {
				t.Errorf("%q: no label %q on %v", e, l, names)
			}
		}
	}
	for n := range reg {
		if !used[n] {
			t.Errorf("%s is registered but neither on the dashboard nor in an alert", n)
		}
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

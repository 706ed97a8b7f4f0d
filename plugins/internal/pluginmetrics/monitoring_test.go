package pluginmetrics_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	_ "github.com/edgeguard/edgeguard/plugins/internal/auditconf" // registers the plugins' audit counters
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
)

// monitoringDir holds the dashboard and the alert rules (deploy/monitoring).
var monitoringDir = filepath.Join("..", "..", "..", "deploy", "monitoring")

// externalMetrics are the names the dashboard and rules may use that
// edgeguard's code does not register (deploy/monitoring/external-series.json:
// Prometheus's up, Kong's prometheus plugin), with their labels. Each is
// listed, so a typo still fails; tests/e2e TestKongServesTheSeriesTheDashboardUses
// checks the Kong ones against the real Kong.
func externalMetrics(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(monitoringDir, "external-series.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("external-series.json: %v", err)
	}
	out := map[string][]string{}
	for name, v := range m {
		if strings.HasPrefix(name, "_") {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			t.Fatalf("external-series.json: %s is not a list of label names", name)
		}
		for _, l := range list {
			s, ok := l.(string)
			if !ok {
				t.Fatalf("external-series.json: %s has a label that is not a string", name)
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

// family is a registered metric: its type and its label names (const
// labels included, "le" for histograms), plus the target labels every
// scrape adds.
type family struct {
	typ    dto.MetricType
	labels []string
}

// registeredMetrics builds the registries the code builds — a plugin
// server's (pluginmetrics.Registry, with a shared JWKS key set so the
// per-issuer series exist) and a service's (httpmetrics.New, what each
// service's app builds) — puts a sample in every vector, and gathers them.
func registeredMetrics(t *testing.T) map[string]family {
	t.Helper()
	// a label value of this test's own: the package's other tests assert
	// exact values for the real plugin names
	pluginmetrics.Observe("monitoring-test", 1, 0, "")
	pluginmetrics.Observe("monitoring-test", 1, 401, "token_expired")
	p := jwttest.New(t)
	v, err := jwtauth.Shared(jwtauth.Config{Issuers: []jwtauth.Issuer{{Issuer: p.Issuer, JWKSURL: p.JWKSURL()}},
		Audiences: []string{"monitoring-test"}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !v.Ready() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	svc := httpmetrics.New("monitoring-test")
	svc.Observe("/x", "GET", 200, time.Millisecond)
	// what llm-api's and mcp-tools' apps add to their registry
	svc.Registry().MustRegister(audit.NewMetrics(nil).Collectors()...)

	out := map[string]family{}
	for _, g := range []interface {
		Gather() ([]*dto.MetricFamily, error)
	}{pluginmetrics.Registry, svc.Registry()} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			f := family{typ: mf.GetType(), labels: []string{"job", "instance"}}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if !slices.Contains(f.labels, lp.GetName()) {
						f.labels = append(f.labels, lp.GetName())
					}
				}
			}
			if f.typ == dto.MetricType_HISTOGRAM {
				f.labels = append(f.labels, "le")
			}
			out[mf.GetName()] = f
		}
	}
	for _, want := range []string{"edgeguard_plugin_requests_total", "edgeguard_jwks_key_set_age_seconds",
		"edgeguard_ratelimit_fallback_active", "edgeguard_http_requests_total", "go_goroutines"} {
		if _, ok := out[want]; !ok {
			t.Fatalf("the registries gathered no %s: the collection is broken", want)
		}
	}
	return out
}

// selector is one metric name in a PromQL expression, with the label names
// its {…} matchers use.
type selector struct {
	name   string
	labels []string
}

var (
	reString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	reSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	reMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	reBraces   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	reOffset   = regexp.MustCompile(`\boffset\s+[^\s()]+`)
	reGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	reLabelVal = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

var promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "by": true, "without": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "offset": true, "inf": true, "nan": true,
	"Inf": true, "NaN": true}

// metricSelectors returns the metrics a PromQL expression (or a Grafana
// label_values(metric, label) query) reads.
func metricSelectors(expr string) []selector {
	var out []selector
	for _, m := range reLabelVal.FindAllStringSubmatch(expr, -1) {
		out = append(out, selector{name: m[1], labels: []string{m[2]}})
	}
	expr = reLabelVal.ReplaceAllString(expr, "")
	expr = reString.ReplaceAllString(expr, `""`)
	seen := map[int]bool{}
	for _, m := range reSelector.FindAllStringSubmatchIndex(expr, -1) {
		s := selector{name: expr[m[2]:m[3]]}
		for _, lm := range reMatcher.FindAllStringSubmatch(expr[m[4]:m[5]], -1) {
			s.labels = append(s.labels, lm[1])
		}
		if !promqlWords[s.name] {
			out = append(out, s)
			seen[m[2]] = true
		}
	}
	// bare names (no {…}): blank out what is not a name, keep offsets
	blank := func(re *regexp.Regexp, s string) string {
		return re.ReplaceAllStringFunc(s, func(x string) string { return strings.Repeat(" ", len(x)) })
	}
	// a selector's name stays where it was; only its {…} is blanked
	e := blank(reBraces, expr)
	e = blank(reOffset, e)
	e = blank(reGrouping, e)
	for _, loc := range reIdent.FindAllStringIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		if seen[loc[0]] || promqlWords[word] {
			continue
		}
		if loc[0] > 0 && strings.ContainsAny(e[loc[0]-1:loc[0]], "0123456789.$") {
			continue // 1e3, 0.95, a $variable
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		out = append(out, selector{name: word})
	}
	return out
}

func TestMetricSelectorsFindEveryNameAndOnlyNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (service) (rate(edgeguard_http_requests_total{status=~"5..",service=~"$service"}[5m])) / sum by (service) (rate(edgeguard_http_requests_total[5m])) > 0.05`,
			[]string{"edgeguard_http_requests_total{service,status}", "edgeguard_http_requests_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(kong_request_latency_ms_bucket[$__rate_interval])))`, []string{"kong_request_latency_ms_bucket"}},
		{`a_total > 3 * sum(rate(b_total{x="and or"}[1h] offset 5m)) and on(instance) c == 1e3`, []string{"b_total{x}", "a_total", "c"}},
		{`max(edgeguard_ratelimit_fallback_active) == bool 1 unless ignoring (job) up{job=~"edgeguard-.*"}`, []string{"up{job}", "edgeguard_ratelimit_fallback_active"}},
		{`label_values(edgeguard_http_requests_total, service)`, []string{"edgeguard_http_requests_total{service}"}},
		{`sum(rate(x_total[1h] offset $__interval))`, []string{"x_total"}},
	}
	for _, tt := range tests {
		var got []string
		for _, s := range metricSelectors(tt.expr) {
			n := s.name
			if len(s.labels) > 0 {
				sort.Strings(s.labels)
				n += "{" + strings.Join(s.labels, ",") + "}"
			}
			got = append(got, n)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %v\nwant %v", tt.expr, got, tt.want)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertExprs parses alerts.yml (the Go check that runs without promtool)
// and returns every rule's expression by alert name.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	out := map[string]string{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("alerts.yml: group %q without a name or rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || r.Record != "":
				t.Errorf("alerts.yml: group %s: a rule that is not an alert (%q)", g.Name, r.Record)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("%s: no expr", r.Alert)
			case r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical":
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Errorf("%s: no summary annotation", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses", r.Alert)
			}
			if _, dup := out[r.Alert]; dup {
				t.Errorf("%s defined twice", r.Alert)
			}
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// dashboardExprs parses the Grafana dashboard and returns every query:
// panel targets (rows' nested panels too) and templating queries.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "grafana", "edgeguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int     `json:"id"`
		Title   string  `json:"title"`
		Type    string  `json:"type"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	}
	var d struct {
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("edgeguard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("edgeguard.json: title %q uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	out := map[string]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
				}
				out["panel "+p.Title+" "+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if json.Unmarshal(v.Query, &s) != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
			q.Query = s
		}
		out["variable "+v.Name] = q.Query
	}
	return out
}

// TestMonitoringUsesOnlyRegisteredMetrics: every metric the dashboard and
// the alert rules read is one the code registers (or Kong's / Prometheus's,
// listed in externalMetrics), with the labels it has; a histogram's
// _bucket/_sum/_count only for a histogram. So neither can reference a
// metric that does not exist.
func TestMonitoringUsesOnlyRegisteredMetrics(t *testing.T) {
	reg := registeredMetrics(t)
	external := externalMetrics(t)
	exprs := dashboardExprs(t)
	for name, e := range alertExprs(t) {
		exprs["alert "+name] = e
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d queries found: the parsers are broken", len(exprs))
	}
	used := map[string]bool{}
	for where, expr := range exprs {
		sels := metricSelectors(expr)
		if len(sels) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, s := range sels {
			if strings.HasPrefix(s.name, "edgeguard_llm_") {
				// llm-api's budget metrics: checked against llm-api's own
				// collectors by services/llm-api's metering
				// TestMonitoringUsesMeteringsMetrics (an internal package)
				continue
			}
			labels, ok := []string(nil), false
			if f, found := reg[s.name]; found {
				labels, ok = f.labels, true
			} else if l, found := external[s.name]; found {
				labels, ok = l, true
			} else {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					base := strings.TrimSuffix(s.name, suf)
					if base == s.name {
						continue
					}
					if f, found := reg[base]; found && f.typ == dto.MetricType_HISTOGRAM {
						labels, ok = f.labels, true
						if suf != "_bucket" {
							labels = slices.DeleteFunc(slices.Clone(labels), func(l string) bool { return l == "le" })
						}
						s.name = base
					} else if l, found := external[base]; found && slices.Contains(l, "le") {
						labels, ok = l, true
						s.name = base
					}
				}
			}
			if !ok {
				t.Errorf("%s: %s is not a metric the plugin servers or services register (%q)", where, s.name, expr)
				continue
			}
			used[s.name] = true
			for _, l := range s.labels {
				if !slices.Contains(labels, l) {
					t.Errorf("%s: %s has no label %q (it has %v)", where, s.name, l, labels)
				}
			}
		}
	}
	var unused []string
	for name := range reg {
		if strings.HasPrefix(name, "edgeguard_") && !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("edgeguard metrics on no dashboard panel and in no rule: %v", unused)
	}
}

// TestPromtoolAcceptsRulesAndConfig runs promtool (scripts/promtool.sh,
// from Debian's prometheus package): check rules, the rules' unit tests
// (alerts_test.yml) and the example configuration. Without promtool it
// skips locally and fails under CI=true.
func TestPromtoolAcceptsRulesAndConfig(t *testing.T) {
	promtool := testenv.Require(t, "EDGEGUARD_PROMTOOL")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = monitoringDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

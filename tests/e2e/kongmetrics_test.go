package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKongServesTheSeriesTheDashboardUses: the Kong series the dashboard
// and the alert rules read (deploy/monitoring/external-series.json, whose
// queries plugins/internal/pluginmetrics checks against that list) exist in
// the real Kong running kong/kong.yml, with exactly those labels — so a
// Kong upgrade or a prometheus plugin setting that renames them fails here,
// not in a blank panel.
func TestKongServesTheSeriesTheDashboardUses(t *testing.T) {
	_, e := requireEdge(t)
	status := e.Env["KONG_STATUS_URL"]
	if status == "" {
		t.Fatal("the dev stack printed no KONG_STATUS_URL")
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "monitoring", "external-series.json"))
	if err != nil {
		t.Fatal(err)
	}
	var listed map[string]any
	if err := json.Unmarshal(raw, &listed); err != nil {
		t.Fatal(err)
	}
	// traffic on a proxied route: an answer from the service and a denial
	access, _ := e.guest(t)
	if a := e.do(t, http.MethodGet, "/v1/models", access, nil, nil); a.status != http.StatusOK {
		t.Fatalf("GET /v1/models: %d", a.status)
	}
	e.do(t, http.MethodGet, "/v1/models", "", nil, nil)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, status+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("Kong's status API: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", status, res.StatusCode)
	}
	served := map[string][]string{} // series name → label names of its first sample
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, labels, ok := sampleLabels(sc.Text())
		if ok {
			if _, seen := served[name]; !seen {
				served[name] = labels
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	checked := 0
	for name, v := range listed {
		if !strings.HasPrefix(name, "kong_") {
			continue
		}
		var want []string
		for _, l := range v.([]any) {
			want = append(want, l.(string))
		}
		sample := name
		if slices.Contains(want, "le") {
			sample = name + "_bucket"
		}
		got, ok := served[sample]
		if !ok {
			t.Errorf("Kong serves no %s", sample)
			continue
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Kong's labels %v, the dashboard's list %v", sample, got, want)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("external-series.json lists no kong_ series")
	}
}

// sampleLabels splits one exposition line `name{a="x",b="y"} value` into
// the name and its label names (comments and blank lines: not a sample).
func sampleLabels(line string) (name string, labels []string, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, false
	}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return "", nil, false
	}
	name = line[:i]
	if line[i] != '{' {
		return name, nil, true
	}
	rest := line[i+1:]
	for {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return name, labels, true
		}
		labels = append(labels, strings.TrimLeft(rest[:eq], ", "))
		// skip the quoted value (\" escapes inside)
		j := eq + 2
		for j < len(rest) && rest[j] != '"' {
			if rest[j] == '\\' {
				j++
			}
			j++
		}
		if j+1 >= len(rest) {
			return name, labels, true
		}
		rest = rest[j+1:]
		if strings.HasPrefix(rest, "}") {
			return name, labels, true
		}
	}
}

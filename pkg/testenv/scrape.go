package testenv

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Scrape GETs a Prometheus text exposition (a /metrics URL) and returns
// every sample by its series as the exposition prints it,
// `name{label="value",…}` (labels in the registry's sorted order). It fails
// the test on a transport error, a status other than 200 or a malformed
// line.
func Scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		t.Fatalf("scrape %s: %d %s", url, res.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("scrape %s: malformed line %q", url, line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: line %q: %v", url, line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return out
}

// HTTPRequests is the series of edgeguard_http_requests_total (pkg/httpmetrics)
// for one service, route template, method and status, as Scrape keys it.
func HTTPRequests(service, route, method string, status int) string {
	return `edgeguard_http_requests_total{method="` + method + `",route="` + route + `",service="` + service +
		`",status="` + strconv.Itoa(status) + `"}`
}

// CheckHTTPMetrics checks a scrape of a service's internal listener after a
// scripted run: every series in want has exactly its value; the requests
// counted (edgeguard_http_requests_total, the scrapes of /metrics aside) add
// up to total; and no series name holds one of never (credentials, raw
// paths, ids, addresses that must not become label values).
func CheckHTTPMetrics(t testing.TB, got, want map[string]float64, total int, never ...string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %g, want %g", k, got[k], v)
		}
	}
	sum := 0.0
	for k, v := range got {
		if strings.HasPrefix(k, "edgeguard_http_requests_total{") && !strings.Contains(k, `route="/metrics"`) {
			sum += v
		}
		for _, s := range never {
			if strings.Contains(k, s) {
				t.Errorf("a credential, raw path, id or address became a label: %s", k)
			}
		}
	}
	if sum != float64(total) {
		t.Errorf("%g requests counted, want %d", sum, total)
	}
}

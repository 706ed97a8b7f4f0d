package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// redisRecord is one redis record (redis, dpop_redis, audit.redis) of a
// plugin configuration as Kong runs it.
type redisRecord struct {
	at        string // plugin name / route id, then the path inside its config
	addresses []string
	cluster   bool
}

// kongRedisRecords returns the configured redis records (those with
// addresses; Kong fills the unset ones with its defaults) of every plugin
// the Kong at admin runs (the Admin API's GET /plugins: the configuration
// after scripts/dev.sh's rendering and Kong's schema defaults).
func kongRedisRecords(t *testing.T, admin string) []redisRecord {
	t.Helper()
	resp, err := http.Get(admin + "/plugins?size=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			Name   string         `json:"name"`
			Route  map[string]any `json:"route"`
			Config map[string]any `json:"config"`
		} `json:"data"`
		Next any `json:"next"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/plugins: %d", admin, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if page.Next != nil {
		t.Fatal("GET /plugins has a next page: raise size")
	}
	var out []redisRecord
	var walk func(at string, v any)
	walk = func(at string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if addrs, ok := x["addresses"].([]any); ok && len(addrs) > 0 {
				r := redisRecord{at: at}
				for _, a := range addrs {
					s, _ := a.(string)
					r.addresses = append(r.addresses, s)
				}
				r.cluster, _ = x["cluster"].(bool)
				out = append(out, r)
			}
			for k, sub := range x {
				walk(at+"."+k, sub)
			}
		case []any:
			for _, sub := range x {
				walk(at+"[]", sub)
			}
		}
	}
	for _, p := range page.Data {
		route, _ := p.Route["id"].(string)
		walk(p.Name+"@"+route, p.Config)
	}
	if len(out) == 0 {
		t.Fatalf("the Kong at %s runs no plugin with a redis record", admin)
	}
	return out
}

// checkRedisRecords: every record names addrs, with cluster as wanted.
func checkRedisRecords(t *testing.T, where string, records []redisRecord, addrs []string, cluster bool) {
	t.Helper()
	for _, r := range records {
		if !slices.Equal(r.addresses, addrs) || r.cluster != cluster {
			t.Errorf("%s: %s: addresses %v cluster %v, want %v cluster %v", where, r.at, r.addresses, r.cluster, addrs, cluster)
		}
	}
}

// TestGatewayRunsKongYMLOnTheLocalRedis: kong.yml names the deployments'
// Redis Cluster by one seed (redis:6379, cluster: true); scripts/dev.sh
// renders the one local Redis of make dev and this suite as a single node —
// every redis record of the running Kong has that address and cluster off
// (a Cluster client on a single Redis would fail every command). The
// topology suite checks the other rendering: a list, cluster on.
func TestGatewayRunsKongYMLOnTheLocalRedis(t *testing.T) {
	_, e := requireEdge(t)
	records := kongRedisRecords(t, e.Env["KONG_ADMIN_URL"])
	checkRedisRecords(t, "the dev stack's Kong", records, []string{e.redis.Addr()}, false)
	t.Logf("figure: %d redis records, each on the single Redis %s", len(records), e.redis.Addr())
}

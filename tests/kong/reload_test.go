package kong

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// edgeRoute is the route the load tests protect with the all-in-one
// edgeguard plugin (header hygiene, JWT with an edge identity assertion,
// a Redis rate limit far above the load), as kong/kong.yml's API routes do.
func edgeRoute(p *jwttest.IdP, redis, keyFile string, requiredRoles []string) map[string]any {
	jwt := map[string]any{
		"issuers":               []map[string]any{{"issuer": p.Issuer, "jwks_url": p.JWKSURL()}},
		"audiences":             []string{"jan-api"},
		"allowed_azp":           []string{"jan-cli"},
		"upstream_name":         "llm-api",
		"edge_signing_key_file": keyFile,
	}
	if len(requiredRoles) > 0 {
		jwt["required_roles"] = requiredRoles
	}
	return route("edge", "/edge", plugin("edgeguard", map[string]any{
		"header_guard": map[string]any{"max_headers": 100},
		"jwt":          jwt,
		"ratelimit": map[string]any{
			"second": 1000000, "redis": map[string]any{"addresses": []string{redis}}, "on_redis_error": "local",
		},
	}))
}

// TestDBLessReloadUnderLoad drives a constant mixed load (valid token, no
// token, forged token, expired token) through edgeguard in the real Kong
// while the DB-less configuration is replaced (Admin API POST /config)
// three times, alternating between "any authenticated user" and "role
// admin required". Every request gets an answer; no request without a
// valid credential reaches the upstream and each is 401; nothing is 5xx;
// and after each reload valid requests follow the new config (403 while
// admin is required, 200 otherwise).
func TestDBLessReloadUnderLoad(t *testing.T) {
	p := jwttest.New(t)
	up := newUpstream(t)
	redis := redisAddr(t)
	secrets, jwks := secretsDir(t, "")
	const sub = "u-reload"
	creds := newCredentials(t, p, sub)
	config := func(k *kongInstance, adminOnly bool) map[string]any {
		key := "/etc/kong/secrets/edge_identity.pem" // rewritten by scripts/kong.sh at start
		if k != nil {
			key = k.keyPath("edge_identity.pem")
		}
		var roles []string
		if adminOnly {
			roles = []string{"admin"}
		}
		return declarative(service("llm-api", up.URL(), edgeRoute(p, redis, key, roles)))
	}
	k := startKong(t, kongOptions{config: config(nil, false), secrets: secrets})
	url := k.proxy + "/edge"
	if r := mustDo(t, http.MethodGet, url, creds.header(kindValid, "warmup")); r.status != http.StatusOK {
		t.Fatalf("warm-up: a valid token got %d %s", r.status, r.body)
	}

	// Three reloads, 3 s apart, under load; the last one requires admin.
	type reload struct {
		adminOnly  bool
		start, end time.Time
	}
	reloads := []reload{{adminOnly: true}, {adminOnly: false}, {adminOnly: true}}
	l := startLoad(url, creds, 8)
	begin := time.Now()
	for i := range reloads {
		time.Sleep(time.Until(begin.Add(time.Duration(i+1) * 3 * time.Second)))
		reloads[i].start = time.Now()
		k.postConfig(t, config(k, reloads[i].adminOnly))
		reloads[i].end = time.Now()
	}
	time.Sleep(time.Until(begin.Add(12 * time.Second)))
	rs := l.Stop()
	elapsed := time.Since(begin)
	t.Logf("%d requests in %s (%.0f/s): %s", len(rs), elapsed.Round(time.Millisecond), float64(len(rs))/elapsed.Seconds(), tallyString(tally(rs)))

	// Every request answered, nothing 5xx, every invalid credential 401.
	var lost, fivexx int
	for _, r := range rs {
		switch {
		case r.err != nil:
			lost++
			if lost <= 5 {
				t.Errorf("request %s got no answer: %v", r.id, r.err)
			}
		case r.status >= 500:
			fivexx++
			if fivexx <= 5 {
				t.Errorf("request %s (%s): %d %s", r.id, r.kind, r.status, r.code)
			}
		case r.kind != kindValid && r.status != http.StatusUnauthorized:
			t.Errorf("request %s (%s): %d %s, want 401", r.id, r.kind, r.status, r.code)
		case r.kind == kindValid && r.status != http.StatusOK && r.status != http.StatusForbidden:
			t.Errorf("valid request %s: %d %s, want 200 or 403", r.id, r.status, r.code)
		}
	}
	if lost > 0 || fivexx > 0 {
		t.Errorf("%d requests without an answer, %d answered 5xx (want 0 and 0)", lost, fivexx)
	}
	checkFailClosed(t, rs, up, edgeVerifier(t, jwks, "llm-api"), "/edge", sub)

	// After each reload, valid requests follow the new config: the last 20
	// valid requests before the next reload (all started after this one
	// returned) have the new answer; the log says how soon they had it.
	for i, rl := range reloads {
		want := http.StatusOK
		if rl.adminOnly {
			want = http.StatusForbidden
		}
		next := begin.Add(12 * time.Second)
		if i+1 < len(reloads) {
			next = reloads[i+1].start
		}
		var window []result
		for _, r := range rs {
			if r.kind == kindValid && r.err == nil && r.start.After(rl.end) && r.end.Before(next) {
				window = append(window, r)
			}
		}
		if len(window) < 20 {
			t.Errorf("reload %d: only %d valid requests between it and the next (load too slow?)", i+1, len(window))
			continue
		}
		for _, r := range window[len(window)-20:] {
			if r.status != want {
				t.Errorf("reload %d (admin required: %v): valid request %s at +%s got %d, want %d",
					i+1, rl.adminOnly, r.id, r.start.Sub(rl.end).Round(time.Millisecond), r.status, want)
			}
		}
		first := len(window)
		for j := len(window) - 1; j >= 0 && window[j].status == want; j-- {
			first = j
		}
		old := 0
		for _, r := range window[:first] {
			if r.status != want {
				old++
			}
		}
		lag := time.Duration(0)
		if first < len(window) {
			lag = window[first].start.Sub(rl.end)
		}
		t.Logf("reload %d (admin required: %v): POST /config took %s; %d valid requests after it, %d still with the old answer, the new one from +%s on",
			i+1, rl.adminOnly, rl.end.Sub(rl.start).Round(time.Millisecond), len(window), old, lag.Round(time.Millisecond))
	}

	// After the load, the last config (admin required) holds on every worker.
	for i := range 40 {
		r := mustDo(t, http.MethodGet, url, creds.header(kindValid, fmt.Sprintf("after-%d", i)))
		if r.status != http.StatusForbidden || r.code() != "insufficient_role" {
			t.Fatalf("after the reloads, a valid token without role admin got %d %s, want 403 insufficient_role", r.status, r.body)
		}
	}
}

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/tests/e2e/internal/devstack"
)

// TestTopology runs the production shape on loopback (scripts/topology.sh):
// nginx in front of two DB-less Kong nodes on the same kong.yml, trusted for
// X-Forwarded-For only from the balancer's address (127.0.0.2); two llm-api
// replicas behind the nodes' upstream; a private Redis Cluster of 3 masters
// and 3 replicas under every Redis user (limits, key cache and revocations,
// audit, guest limits). Clients connect from 127.0.0.3 and up. The subtests
// run in order, the destructive ones last; each logs its figure.
func TestTopology(t *testing.T) {
	s := newSuite(t)
	pgDSN := os.Getenv("EDGEGUARD_TEST_PG_DSN")
	if pgDSN == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEGUARD_TEST_PG_DSN unset under CI=true (scripts/test.sh starts PostgreSQL)")
		}
		t.Skip("no PostgreSQL (run through make test)")
	}
	cluster := testenv.StartRedisCluster(t)
	top := startTopology(t, s, cluster, pgDSN)

	t.Run("every Kong node's redis records name the cluster's nodes, cluster on", func(t *testing.T) {
		for n := 1; n <= 2; n++ {
			records := kongRedisRecords(t, top.Env[fmt.Sprintf("KONG_NODE_%d_ADMIN_URL", n)])
			checkRedisRecords(t, fmt.Sprintf("Kong node %d", n), records, cluster.Addrs(), true)
		}
	})

	t.Run("the client address is the client's, whatever its X-Forwarded-For", func(t *testing.T) {
		rid := "topo-" + randHex(8)
		res := top.doFrom(t, "127.0.0.3", http.MethodPost, top.gw+"/auth/refresh",
			http.Header{"X-Forwarded-For": {"198.18.0.9, 10.0.0.1"}, "X-Request-ID": {rid}})
		if res.status == http.StatusTooManyRequests || res.status >= 500 {
			t.Fatalf("refresh through the balancer: %d %s", res.status, res.body)
		}
		line := top.accessLine(t, rid)
		if !strings.HasPrefix(line, "127.0.0.3 ") {
			t.Fatalf("Kong decided another client address: %q", line)
		}
	})

	t.Run("a limit is exact across both Kong nodes", func(t *testing.T) {
		// guest-auth: limit_by ip, 10 a minute (kong.yml). Both nodes in
		// turn, one client address, as fast as they answer: GCRA allows the
		// burst of 10 (an 11th only when an emission interval, 6 s, passed).
		allowed, limited := 0, 0
		for i := range 30 {
			res := top.doFrom(t, "127.0.0.4", http.MethodPost, top.node(i%2+1)+"/auth/refresh", nil)
			switch {
			case res.status == http.StatusTooManyRequests && res.code() == "rate_limited":
				limited++
			case res.status >= 500:
				t.Fatalf("request %d: %d %s", i, res.status, res.body)
			default:
				allowed++
			}
		}
		t.Logf("figure: 30 requests alternating the two nodes, one client: %d allowed, %d limited (limit 10/min; 2 independent nodes would allow 20)", allowed, limited)
		if allowed < 10 || allowed > 11 {
			t.Fatalf("%d requests allowed across the two nodes, want 10 (11 at most)", allowed)
		}
	})

	_, jwt := top.userToken(t, s)

	t.Run("a revoked key stops working on both nodes within 1 s", func(t *testing.T) {
		id, key := top.apiKey(t, jwt, "topology-revoke")
		for n := 1; n <= 2; n++ {
			if res := top.get(t, top.node(n)+"/v1/models", key); res.status != http.StatusOK {
				t.Fatalf("node %d before revocation: %d %s", n, res.status, res.body)
			}
		}
		start := time.Now()
		if res := top.do(t, http.MethodDelete, "/auth/api-keys/"+id, jwt, nil, nil); res.status/100 != 2 {
			t.Fatalf("revoke: %d %s", res.status, res.body)
		}
		var wg sync.WaitGroup
		took := make([]time.Duration, 3)
		for n := 1; n <= 2; n++ {
			wg.Go(func() {
				for time.Since(start) < 5*time.Second {
					if res := top.get(t, top.node(n)+"/v1/models", key); res.status == http.StatusUnauthorized {
						took[n] = time.Since(start)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				took[n] = -1
			})
		}
		wg.Wait()
		t.Logf("figure: revoked key refused by node 1 after %v, node 2 after %v", took[1], took[2])
		for n := 1; n <= 2; n++ {
			if took[n] < 0 || took[n] > time.Second {
				t.Fatalf("node %d still accepted the revoked key %v after the revocation", n, took[n])
			}
		}
	})

	t.Run("a Redis master killed under load: fail policy, then Redis again by itself", func(t *testing.T) {
		_, key := top.apiKey(t, jwt, "topology-failover")
		// the master holding the rate-limit keys of this caller on this
		// route: the identity keys (":u:") a request to /v1/models has just
		// touched — other routes keep their own (namespaces), idle longer
		time.Sleep(2100 * time.Millisecond)
		if res := top.get(t, top.gw+"/v1/models", key); res.status != http.StatusOK {
			t.Fatalf("warm-up: %d %s", res.status, res.body)
		}
		keys := cluster.Keys("edgeguard:rl:*")
		var victim string
		for _, k := range keys {
			if strings.Contains(k, ":u:") && cluster.IdleSeconds(k) == 0 {
				victim = cluster.MasterOf(cluster.Slot(k))
				break
			}
		}
		if victim == "" {
			t.Fatalf("no identity rate-limit key just used on the cluster (keys %v)", keys)
		}
		// load under the caller's limit (10/s): every decision asks Redis
		load := top.load(t, key, 2)
		time.Sleep(500 * time.Millisecond)
		killed := time.Now()
		cluster.Kill(victim)
		// the gap: from the kill until the fail policy stops deciding and
		// Redis decides again, on both nodes
		var fellBack, back time.Duration
		for time.Since(killed) < 40*time.Second && back == 0 {
			time.Sleep(50 * time.Millisecond)
			active := top.fallbackActive(t)
			switch {
			case active && fellBack == 0:
				fellBack = time.Since(killed)
			case !active && fellBack > 0:
				now := top.redisDecisions(t)
				time.Sleep(300 * time.Millisecond)
				if top.redisDecisions(t) > now && !top.fallbackActive(t) {
					back = time.Since(killed)
				}
			}
		}
		stats := load.stop()
		t.Logf("figure: Redis master %s killed under load: the fail policy (local) decided from %v, Redis again after %v; %d answers during the run %v",
			victim, fellBack, back, stats.total(), stats.byStatus)
		if fellBack == 0 {
			t.Fatal("the edge never fell back to its fail policy: the killed master held no key of the load")
		}
		if back == 0 {
			t.Fatal("the edge did not return to Redis within 40 s of the kill")
		}
		if n := stats.count(func(s int) bool { return s >= 500 || s == 0 || s == http.StatusUnauthorized }); n > 0 {
			t.Fatalf("%d answers refused or failed during the failover (policy local: decisions go on): %v", n, stats.byStatus)
		}
		cluster.Restart(victim, 20*time.Second)
		cluster.WaitHealthy(30 * time.Second)
	})

	t.Run("an llm-api replica killed mid-stream: a clean error, new requests on the other", func(t *testing.T) {
		_, key := top.apiKey(t, jwt, "topology-stream")
		// streams that send one chunk and hold: both replicas hold some
		type stream struct {
			err  chan error
			at   time.Time // when it ended
			body io.ReadCloser
		}
		var streams []*stream
		for range 6 {
			body := top.openStream(t, key)
			st := &stream{err: make(chan error, 1), body: body}
			go func() {
				_, err := io.Copy(io.Discard, body)
				if err == nil {
					err = io.EOF // the stream ended: the stall never completes on its own
				}
				st.at = time.Now()
				st.err <- err
			}()
			streams = append(streams, st)
		}
		killed := time.Now()
		top.killReplica(t, 1)
		var failed int
		var firstErr time.Duration
		timeout := time.After(10 * time.Second)
	collect:
		for _, st := range streams {
			select {
			case <-st.err:
				if d := st.at.Sub(killed); failed == 0 || d < firstErr {
					firstErr = d
				}
				failed++
			case <-time.After(2 * time.Second): // a stream on the other replica holds on
			case <-timeout:
				break collect
			}
		}
		for _, st := range streams {
			st.body.Close()
		}
		ok := 0
		for range 10 {
			if res := top.get(t, top.gw+"/v1/models", key); res.status == http.StatusOK {
				ok++
			}
		}
		t.Logf("figure: replica 1 killed with 6 streams open: %d ended with an error (the first after %v), the others held; then %d/10 new requests answered 200",
			failed, firstErr, ok)
		if failed == 0 || failed == len(streams) {
			t.Fatalf("%d of %d streams failed: want those of the killed replica only", failed, len(streams))
		}
		if firstErr > 5*time.Second {
			t.Fatalf("the client learnt of the dead replica only after %v", firstErr)
		}
		if ok != 10 {
			t.Fatalf("%d/10 new requests answered 200 after the replica died", ok)
		}
	})

	t.Run("a Kong node killed: the balancer drains to the other, never unauthenticated", func(t *testing.T) {
		_, key := top.apiKey(t, jwt, "topology-kong-kill")
		authed := top.load(t, key, 2) // 8/s: under the caller's 10/s
		anon := top.load(t, "", 2)
		time.Sleep(500 * time.Millisecond)
		top.killKong(t, 1)
		time.Sleep(3 * time.Second)
		a, n := authed.stop(), anon.stop()
		t.Logf("figure: node 1 killed under load: authenticated %d answers %v; without a credential %d answers %v",
			a.total(), a.byStatus, n.total(), n.byStatus)
		if got := n.count(func(s int) bool { return s/100 == 2 }); got > 0 {
			t.Fatalf("%d requests without a credential were let through", got)
		}
		if got := a.count(func(s int) bool { return s/100 == 2 }); got == 0 {
			t.Fatal("no authenticated request succeeded")
		}
		if got := a.count(func(s int) bool { return s == 0 || s >= 500 }); got > 0 {
			t.Logf("%d authenticated requests failed while the balancer noticed the dead node", got)
		}
		// after the drain, every request is answered by node 2
		time.Sleep(time.Second) // the caller's per-second limit refills
		for range 10 {
			if res := top.get(t, top.gw+"/v1/models", key); res.status != http.StatusOK {
				t.Fatalf("after the drain: %d %s", res.status, res.body)
			}
			time.Sleep(150 * time.Millisecond)
		}
	})
}

// topology is the running production shape.
type topology struct {
	*edgeStack
}

func startTopology(t *testing.T, s *suite, cluster *testenv.RedisCluster, pgDSN string) *topology {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := freshSchema(pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "edgeguard-e2e-topology-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // Kong (non-root) reads its config below
		t.Fatal(err)
	}
	st, err := devstack.UpTopology(context.Background(), root, dir, []string{
		"DEV_GATEWAY_PORT=0",
		"REDIS_ADDR=" + strings.Join(cluster.Addrs(), ","),
		"PG_DSN=" + dsn,
		"KEYCLOAK_URL=" + s.env.URL,
		"KEYCLOAK_ISSUER=" + s.env.Issuer,
		"KEYCLOAK_LLM_API_CLIENT_SECRET_FILE=" + os.Getenv("KEYCLOAK_LLM_API_CLIENT_SECRET_FILE"),
		"KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE=" + os.Getenv("KEYCLOAK_GUEST_LOGIN_CLIENT_SECRET_FILE"),
		"TOPOLOGY_KONG_NODES=2",
		"TOPOLOGY_LLM_API_REPLICAS=2",
		"LOG_LEVEL=debug",
	})
	if err != nil {
		t.Fatalf("the topology did not start: %v", err)
	}
	top := &topology{&edgeStack{Stack: st, gw: st.Env["GATEWAY_URL"], dsn: dsn}}
	t.Cleanup(func() {
		for _, f := range top.atStop {
			f()
		}
		logs, _ := st.LogFiles()
		secrets, _ := stackSecrets(st)
		if err := st.Down(); err != nil {
			t.Errorf("stopping the topology: %v", err)
		}
		for _, sec := range secrets {
			used.add(sec)
		}
		for _, path := range logs {
			if leaks, err := leakedInto(path, used.all()); err != nil || leaks > 0 {
				t.Errorf("%s: %d secrets leaked (%v)", path, leaks, err)
			}
		}
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		}
	})
	return top
}

// node is Kong node n's own proxy URL (bypassing the balancer).
func (top *topology) node(n int) string { return top.Env[fmt.Sprintf("KONG_NODE_%d_PROXY_URL", n)] }

// get sends GET url with bearer from 127.0.0.5 (a client behind the balancer).
func (top *topology) get(t *testing.T, url, bearer string) answer {
	t.Helper()
	h := http.Header{}
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return top.doFrom(t, "127.0.0.5", http.MethodGet, url, h)
}

// accessLine is the access-log line of the request with id rid, on either
// node (the balancer chose one).
func (top *topology) accessLine(t *testing.T, rid string) string {
	t.Helper()
	var line string
	eventually(5*time.Second, func() bool {
		for n := 1; n <= 2; n++ {
			f, err := os.Open(top.Env[fmt.Sprintf("KONG_NODE_%d_ACCESS_LOG", n)])
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "request_id="+rid) {
					line = sc.Text()
				}
			}
			f.Close()
		}
		return line != ""
	})
	if line == "" {
		t.Fatalf("request %s is in no node's access log", rid)
	}
	return line
}

// metric sums a counter or gauge of the edgeguard plugin servers of the
// live nodes.
func (top *topology) metric(t *testing.T, name string) float64 {
	t.Helper()
	sum := 0.0
	for n := 1; n <= 2; n++ {
		u := top.Env[fmt.Sprintf("KONG_NODE_%d_METRICS_EDGEGUARD", n)]
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			continue // a killed node
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				sum += v
			}
		}
		resp.Body.Close()
	}
	return sum
}

func (top *topology) redisDecisions(t *testing.T) float64 {
	return top.metric(t, `edgeguard_ratelimit_decisions_total{source="redis"}`)
}

func (top *topology) fallbackActive(t *testing.T) bool {
	return top.metric(t, "edgeguard_ratelimit_fallback_active") > 0
}

// openStream starts a streamed chat completion that sends one chunk and
// holds (the stub's model stall-stream) and returns its body after the
// first chunk.
func (top *topology) openStream(t *testing.T, key string) io.ReadCloser {
	t.Helper()
	body := `{"model":"stall-stream","stream":true,"messages":[{"role":"user","content":"hold"}]}`
	req, err := http.NewRequest(http.MethodPost, top.gw+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.6")}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{r, resp.Body}
}

// killReplica SIGKILLs llm-api replica n (its process group).
func (top *topology) killReplica(t *testing.T, n int) {
	t.Helper()
	b, err := os.ReadFile(top.Env[fmt.Sprintf("LLM_API_%d_PIDFILE", n)])
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// killKong SIGKILLs Kong node n: its nginx master and workers (a crash:
// no graceful shutdown).
func (top *topology) killKong(t *testing.T, n int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(top.Env[fmt.Sprintf("KONG_NODE_%d_PREFIX", n)], "pids", "nginx.pid"))
	if err != nil {
		t.Fatal(err)
	}
	master, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", master, master))
	_ = syscall.Kill(master, syscall.SIGKILL)
	for _, f := range strings.Fields(string(kids)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// loadStats counts the answers of a load run by status (0: a transport
// error).
type loadStats struct {
	byStatus map[int]int
}

func (s loadStats) total() int {
	n := 0
	for _, v := range s.byStatus {
		n += v
	}
	return n
}

func (s loadStats) count(f func(int) bool) int {
	n := 0
	for st, v := range s.byStatus {
		if f(st) {
			n += v
		}
	}
	return n
}

type loadRun struct {
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	stats   loadStats
}

// load sends GET /v1/models through the balancer from workers goroutines
// (each from its own client address, 127.0.0.10+), 4 requests a second
// each, until stop.
func (top *topology) load(t *testing.T, bearer string, workers int) *loadRun {
	t.Helper()
	l := &loadRun{stats: loadStats{byStatus: map[int]int{}}}
	for w := range workers {
		l.wg.Go(func() {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+w))}, Timeout: 2 * time.Second}
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
			for !l.stopped.Load() {
				req, _ := http.NewRequest(http.MethodGet, top.gw+"/v1/models", nil)
				if bearer != "" {
					req.Header.Set("Authorization", "Bearer "+bearer)
				}
				status := 0
				resp, err := c.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				} else if !errors.Is(err, context.Canceled) {
					status = 0
				}
				l.mu.Lock()
				l.stats.byStatus[status]++
				l.mu.Unlock()
				time.Sleep(250 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *loadRun) stop() loadStats {
	l.stopped.Store(true)
	l.wg.Wait()
	return l.stats
}

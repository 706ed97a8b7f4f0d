package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// VarRedisClusterAddrs is set by scripts/test.sh to the six node addresses
// (comma-separated) of the run's Redis Cluster (scripts/redis-cluster.sh).
const VarRedisClusterAddrs = "EDGEGUARD_TEST_REDIS_CLUSTER_ADDRS"

// RedisClusterAddrs is the shared throw-away Redis Cluster of the test run
// (3 masters, 3 replicas): the addresses of its six nodes. Unset, the test
// is skipped locally and fails under CI=true. Tests share it: never kill its
// nodes (StartRedisCluster gives a private one).
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	return strings.Split(Require(t, VarRedisClusterAddrs), ",")
}

// Cluster node settings of the shared and private clusters: quick failover.
var clusterArgs = []string{
	"--cluster-enabled", "yes",
	"--cluster-node-timeout", "2000",
	"--cluster-replica-validity-factor", "0",
	"--cluster-require-full-coverage", "no",
	"--repl-diskless-sync-delay", "0",
}

// RedisCluster is a private Redis Cluster of 3 masters and 3 replicas,
// redis-server child processes a test may kill and restart (failover tests).
// It stops with the test.
type RedisCluster struct {
	t     testing.TB
	nodes []*RedisServer
}

// StartRedisCluster starts a private cluster with the settings of
// scripts/redis-cluster.sh (cluster-node-timeout 2000 ms,
// cluster-replica-validity-factor 0, cluster-require-full-coverage no) and
// waits until it is healthy (WaitHealthy). It needs the integration
// environment (RedisClusterAddrs) and redis-server and redis-cli; it takes
// about 3 s.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	RedisClusterAddrs(t)
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if CI() {
				t.Fatalf("%s not in PATH under CI=true", bin)
			}
			t.Skipf("%s not in PATH", bin)
		}
	}
	ports := freePorts(t, 12)
	dir := t.TempDir()
	c := &RedisCluster{t: t}
	for i := range 6 {
		port, bus := ports[2*i], ports[2*i+1]
		args := append([]string{"--dir", dir, "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-port", strconv.Itoa(bus)}, clusterArgs...)
		c.nodes = append(c.nodes, &RedisServer{t: t, port: port, args: args})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Kill()
		}
	})
	for _, n := range c.nodes {
		n.Start()
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, c.Addrs()...),
		"--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitHealthy(30 * time.Second)
	return c
}

// freePorts returns n distinct loopback ports nothing listens on right now.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// Addrs are the six nodes' addresses.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

func (c *RedisCluster) node(addr string) *RedisServer {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	c.t.Fatalf("%s is not a node of the cluster %v", addr, c.Addrs())
	return nil
}

// do runs one command on one node with a short deadline.
func do(addr string, args ...any) (any, error) {
	cl := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, MaxRetries: -1, DisableIdentity: true})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return cl.Do(ctx, args...).Result()
}

// Keys lists the keys matching pattern on every live master (KEYS: for
// the small data sets of tests only).
func (c *RedisCluster) Keys(pattern string) []string {
	var out []string
	for _, a := range c.Addrs() {
		role, err := do(a, "role")
		if err != nil {
			continue
		}
		if r, ok := role.([]any); !ok || len(r) == 0 || r[0] != "master" {
			continue
		}
		v, err := do(a, "keys", pattern)
		if err != nil {
			continue
		}
		for _, k := range v.([]any) {
			out = append(out, k.(string))
		}
	}
	return out
}

// IdleSeconds is OBJECT IDLETIME of key on its master: the seconds since a
// command last touched it (-1 when it cannot be read).
func (c *RedisCluster) IdleSeconds(key string) int {
	m := c.MasterOf(c.Slot(key))
	if m == "" {
		return -1
	}
	v, err := do(m, "object", "idletime", key)
	if err != nil {
		return -1
	}
	return int(v.(int64))
}

// Slot is the cluster slot of key (CLUSTER KEYSLOT, asked of a live node).
func (c *RedisCluster) Slot(key string) int {
	c.t.Helper()
	var err error
	for _, a := range c.Addrs() {
		var v any
		if v, err = do(a, "cluster", "keyslot", key); err == nil {
			return int(v.(int64))
		}
	}
	c.t.Fatalf("CLUSTER KEYSLOT: %v", err)
	return 0
}

// MasterOf returns the address of the master serving slot as the live nodes
// see it (not one they mark failing), or "" when none does.
func (c *RedisCluster) MasterOf(slot int) string {
	for _, a := range c.Addrs() {
		v, err := do(a, "cluster", "nodes")
		if err != nil {
			continue
		}
		if m := masterOf(v.(string), slot); m != "" {
			return m
		}
	}
	return ""
}

// masterOf finds slot's master in CLUSTER NODES output.
func masterOf(nodes string, slot int) string {
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			l, _ := strconv.Atoi(lo)
			h, _ := strconv.Atoi(hi)
			if slot >= l && slot <= h {
				addr, _, _ := strings.Cut(f[1], "@")
				return addr
			}
		}
	}
	return ""
}

// Kill SIGKILLs the node at addr (a crash: no shutdown, no failover of its
// own) and waits until its port is free.
func (c *RedisCluster) Kill(addr string) { c.t.Helper(); c.node(addr).Kill() }

// Restart starts the node at addr again (it rejoins from its nodes.conf: a
// killed master comes back as a replica of its successor) and waits until
// the cluster is healthy.
func (c *RedisCluster) Restart(addr string, d time.Duration) {
	c.t.Helper()
	c.node(addr).Start()
	c.WaitHealthy(d)
}

// WaitHealthy waits up to d until every node says cluster_state:ok with
// 16384 slots ok and 6 known nodes, and sees 3 replicas and no failing node,
// and every replica's link to its master is up.
func (c *RedisCluster) WaitHealthy(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var why string
	for time.Now().Before(deadline) {
		if why = c.unhealthy(); why == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("redis cluster not healthy after %s: %s", d, why)
}

func (c *RedisCluster) unhealthy() string {
	for _, a := range c.Addrs() {
		v, err := do(a, "cluster", "info")
		if err != nil {
			return a + ": " + err.Error()
		}
		info := v.(string)
		for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:6"} {
			if !strings.Contains(info, want+"\r\n") {
				return a + ": not " + want
			}
		}
		if v, err = do(a, "cluster", "nodes"); err != nil {
			return a + ": " + err.Error()
		}
		replicas := 0
		for _, line := range strings.Split(v.(string), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			if strings.Contains(f[2], "fail") || f[7] != "connected" {
				return a + " sees " + f[1] + " " + f[2] + " " + f[7]
			}
			if strings.Contains(f[2], "slave") {
				replicas++
			}
		}
		if replicas != 3 {
			return fmt.Sprintf("%s sees %d replicas", a, replicas)
		}
		if v, err = do(a, "info", "replication"); err != nil {
			return a + ": " + err.Error()
		}
		if s := v.(string); strings.Contains(s, "role:slave") && !strings.Contains(s, "master_link_status:up") {
			return a + ": replica link down"
		}
	}
	return ""
}

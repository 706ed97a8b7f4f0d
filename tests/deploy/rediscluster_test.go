package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Redis Cluster of the deployments (issue 17, docs/architecture.md
// "Data stores"): six nodes, 3 masters and 3 replicas, run by
// compose/redis/redis-node.sh and created once by
// compose/redis/redis-cluster-init.sh, in compose and in k8s (which carries
// both scripts byte for byte). Every client names the cluster by one seed,
// redis:6379 — compose's network alias of every node, k8s' headless Service
// — as a Cluster client: kong.yml's redis records with cluster: true, the
// services' REDIS_ADDR with REDIS_CLUSTER=true.

const (
	redisNodeScript = "compose/redis/redis-node.sh"
	redisInitScript = "compose/redis/redis-cluster-init.sh"
	redisNodes      = 6
	redisSeed       = "redis:6379"
)

// redisServerArgs returns the options of redis-node.sh's `exec redis-server
// - …` line (continuation lines joined, up to the here-document), as
// written: "--flag" → its value ("" for none).
func redisServerArgs(t *testing.T) map[string]string {
	t.Helper()
	script := strings.ReplaceAll(string(repoFile(t, redisNodeScript)), "\\\n", " ")
	i := strings.Index(script, "exec redis-server -")
	if i < 0 {
		t.Fatalf("%s: no `exec redis-server -` (the configuration on stdin)", redisNodeScript)
	}
	line, _, _ := strings.Cut(script[i:], "\n")
	line, _, _ = strings.Cut(line, "<<")
	f := strings.Fields(line)[3:]
	out := map[string]string{}
	for j := 0; j < len(f); j++ {
		if !strings.HasPrefix(f[j], "--") {
			continue
		}
		if j+1 < len(f) && !strings.HasPrefix(f[j+1], "--") {
			out[f[j]] = f[j+1]
			j++
		} else {
			out[f[j]] = ""
		}
	}
	return out
}

// scriptVar returns the default of a script's `name=${VAR:-default}` line.
func scriptDefault(t *testing.T, rel, name string) string {
	t.Helper()
	mm := regexp.MustCompile(`(?m)^` + name + `=\$\{[A-Z_]+:-([^}]*)\}$`).FindStringSubmatch(string(repoFile(t, rel)))
	if mm == nil {
		t.Fatalf("%s: no %s=${…:-default} line", rel, name)
	}
	return mm[1]
}

// composeRedisNodes returns the compose services that run redis-node.sh,
// sorted.
func composeRedisNodes(t *testing.T) []string {
	t.Helper()
	var out []string
	for name, svc := range composeServices(t) {
		if slices.Contains(strList(svc["command"]), composeScriptPath(t, svc, "redis_node_sh")) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// composeScriptPath is where svc mounts the compose config named config
// ("" when it does not), after checking that the config is the script of
// the same name under compose/redis/.
func composeScriptPath(t *testing.T, svc map[string]any, config string) string {
	t.Helper()
	for _, c := range l(svc["configs"]) {
		if s(m(c)["source"]) == config {
			return s(m(c)["target"])
		}
	}
	return ""
}

func TestComposeRedisScriptsAreTheRepositorys(t *testing.T) {
	for config, want := range map[string]string{"redis_node_sh": redisNodeScript, "redis_cluster_init_sh": redisInitScript} {
		file := s(path(compose(t), "configs", config, "file"))
		if filepath.Join("compose", file) != want {
			t.Errorf("compose config %s: file %q, want ./%s", config, file, strings.TrimPrefix(want, "compose/"))
		}
		if fi, err := os.Stat(filepath.Join(root, want)); err != nil || fi.Mode().Perm()&0o444 != 0o444 {
			t.Errorf("%s must exist and be world-readable (redis, uid 999, reads the bind mount): %v", want, err)
		}
	}
}

// TestRedisNodeScriptRunsAClusterNode: what every node of both deployments
// runs — cluster mode with nodes.conf in the data directory (a volume), the
// stable announced host name, the ACL file, replicas authenticating with the
// password from stdin, and no persistence of keys.
func TestRedisNodeScriptRunsAClusterNode(t *testing.T) {
	args := redisServerArgs(t)
	want := map[string]string{
		"--cluster-enabled":                 "yes",
		"--cluster-config-file":             "nodes.conf",
		"--cluster-announce-hostname":       `"$REDIS_ANNOUNCE_HOSTNAME"`,
		"--cluster-preferred-endpoint-type": "hostname",
		"--dir":                             `"$data"`,
		"--masteruser":                      "default",
		"--save":                            `""`,
		"--appendonly":                      "no",
		"--cluster-require-full-coverage":   "no",
	}
	for k, v := range want {
		if args[k] != v {
			t.Errorf("%s: redis-server %s %q, want %q", redisNodeScript, k, args[k], v)
		}
	}
	for _, k := range []string{"--cluster-announce-ip", "--port", "--cluster-port", "--bind"} {
		if _, ok := args[k]; ok {
			t.Errorf("%s: %s set; the nodes listen on 6379 and 16379 on every address and announce their name", redisNodeScript, k)
		}
	}
	if d := scriptDefault(t, redisNodeScript, "data"); d != "/data" {
		t.Errorf("%s: data directory %q, want /data (the volume)", redisNodeScript, d)
	}
	if d := scriptDefault(t, redisNodeScript, "secrets"); d != "/run/secrets" {
		t.Errorf("%s: secrets directory %q, want /run/secrets", redisNodeScript, d)
	}
	script := string(repoFile(t, redisNodeScript))
	if !strings.Contains(script, "<<CONF\nmasterauth $(cat \"$secrets/redis_password\")\nCONF\n") {
		t.Errorf("%s: masterauth must come from the password file on stdin (a here-document), never a command line", redisNodeScript)
	}
	if !strings.Contains(script, `repoint "$data/nodes.conf"`) {
		t.Errorf("%s: nodes.conf is not repointed to the peers' current addresses before the start", redisNodeScript)
	}
}

// TestRedisInitScriptCreatesTheClusterOnce: one replica per master, only
// when every node is blank, then waits for cluster_state:ok everywhere.
func TestRedisInitScriptCreatesTheClusterOnce(t *testing.T) {
	script := string(repoFile(t, redisInitScript))
	for _, want := range []string{
		"--cluster create $addrs --cluster-replicas 1 --cluster-yes",
		"if all_blank; then",
		`wait_until "cluster_state:ok on every node" all_ok`,
		"export REDISCLI_AUTH",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("%s lacks %q", redisInitScript, want)
		}
	}
	if strings.Contains(script, " -a ") || strings.Contains(script, "--pass") {
		t.Errorf("%s passes the password on redis-cli's command line (use REDISCLI_AUTH)", redisInitScript)
	}
}

// TestComposeRunsARedisCluster: six nodes, each with its own volume for
// nodes.conf, its service name as host name and announced name, the alias
// redis on the private network (and nothing else carries it); redis-init
// after all of them are healthy, naming exactly them.
func TestComposeRunsARedisCluster(t *testing.T) {
	svcs := composeServices(t)
	nodes := composeRedisNodes(t)
	if len(nodes) != redisNodes {
		t.Fatalf("compose runs redis-node.sh in %v, want %d nodes (3 masters, 3 replicas)", nodes, redisNodes)
	}
	if _, ok := svcs["redis"]; ok {
		t.Error("a service named redis: the name must resolve to the cluster's nodes only (their alias)")
	}
	top := m(compose(t)["volumes"])
	volumes := map[string]string{}
	for _, n := range nodes {
		svc := svcs[n]
		if !strings.HasPrefix(s(svc["image"]), "redis:7.") {
			t.Errorf("%s: image %s, want redis 7 (cluster-announce-hostname)", n, svc["image"])
		}
		if s(svc["hostname"]) != n || env(t, svc)["REDIS_ANNOUNCE_HOSTNAME"] != n {
			t.Errorf("%s: hostname %q, REDIS_ANNOUNCE_HOSTNAME %q; want both %q (the name peers and clients resolve)",
				n, svc["hostname"], env(t, svc)["REDIS_ANNOUNCE_HOSTNAME"], n)
		}
		if nets := serviceNetworks(svc); !slices.Equal(nets, []string{"private"}) {
			t.Errorf("%s: networks %v, want private only", n, nets)
		}
		if !slices.Contains(strList(path(svc, "networks", "private", "aliases")), "redis") {
			t.Errorf("%s: no network alias redis (kong.yml's and the services' seed)", n)
		}
		data := ""
		for _, v := range strList(svc["volumes"]) {
			src, dst, _ := strings.Cut(v, ":")
			if dst == "/data" {
				data = src
			}
		}
		if _, ok := top[data]; !ok || data == "" {
			t.Errorf("%s: /data is not a named volume (%q): nodes.conf must survive a restart", n, data)
		} else if other, dup := volumes[data]; dup {
			t.Errorf("%s and %s share the volume %s", n, other, data)
		}
		volumes[data] = n
	}
	for name, svc := range svcs {
		if !slices.Contains(nodes, name) && slices.Contains(strList(path(svc, "networks", "private", "aliases")), "redis") {
			t.Errorf("%s carries the alias redis but is no cluster node", name)
		}
	}

	var inits []string
	for name, svc := range svcs {
		if composeScriptPath(t, svc, "redis_cluster_init_sh") != "" {
			inits = append(inits, name)
		}
	}
	if len(inits) != 1 {
		t.Fatalf("services mounting redis-cluster-init.sh: %v, want one", inits)
	}
	init := svcs[inits[0]]
	if !slices.Contains(strList(init["command"]), composeScriptPath(t, init, "redis_cluster_init_sh")) {
		t.Errorf("%s: command %v does not run the init script", inits[0], init["command"])
	}
	if init["restart"] != "no" {
		t.Errorf("%s: restart %v, want \"no\" (a one-shot)", inits[0], init["restart"])
	}
	named := strings.Fields(env(t, init)["REDIS_NODES"])
	slices.Sort(named)
	if !slices.Equal(named, nodes) {
		t.Errorf("%s: REDIS_NODES %v, want the nodes %v", inits[0], named, nodes)
	}
	for _, n := range nodes {
		if s(path(init, "depends_on", n, "condition")) != "service_healthy" {
			t.Errorf("%s does not wait for %s to be healthy", inits[0], n)
		}
	}
	if _, ok := secretTargets(init)["/run/secrets/redis_password"]; !ok {
		t.Errorf("%s: no /run/secrets/redis_password", inits[0])
	}
}

// TestComposeRedisClientsAreClusterClients: every user of Redis names the
// seed as a Cluster and starts after redis-init completed.
func TestComposeRedisClientsAreClusterClients(t *testing.T) {
	checkKongYMLRedisRecords(t)
	svcs := composeServices(t)
	clients := []string{"kong"}
	for name, svc := range svcs {
		e := env(t, svc)
		for _, v := range []string{"REDIS_ADDR", "AUDIT_REDIS_ADDR"} {
			if addr, ok := e[v]; ok {
				clients = append(clients, name)
				flag := strings.TrimSuffix(v, "ADDR") + "CLUSTER"
				if addr != redisSeed || e[flag] != "true" {
					t.Errorf("%s: %s=%q %s=%q, want %s and true", name, v, addr, flag, e[flag], redisSeed)
				}
			}
		}
	}
	if !slices.Contains(clients, "llm-api") {
		t.Error("llm-api has no REDIS_ADDR")
	}
	for _, name := range clients {
		if s(path(svcs[name], "depends_on", "redis-init", "condition")) != "service_completed_successfully" {
			t.Errorf("%s uses Redis but does not wait for redis-init to complete", name)
		}
	}
}

// checkKongYMLRedisRecords: every redis record of kong.yml is the seed with
// cluster: true (plugins/internal/kongconf checks them in depth).
func checkKongYMLRedisRecords(t *testing.T) {
	t.Helper()
	n := 0
	for _, r := range kongYMLRedisRecords(t) {
		n++
		if !slices.Equal(strList(r["addresses"]), []string{redisSeed}) || r["cluster"] != true {
			t.Errorf("kong.yml: a redis record %v, want addresses [%s] and cluster: true", r, redisSeed)
		}
	}
	if n == 0 {
		t.Error("kong.yml has no redis record")
	}
}

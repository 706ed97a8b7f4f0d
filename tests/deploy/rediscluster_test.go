package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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

// k8sOne returns the object of kind, namespace and name in the base.
func k8sOne(t *testing.T, objs []k8sObject, kind, namespace, name string) k8sObject {
	t.Helper()
	for _, o := range byKind(objs, kind) {
		if o.namespace() == namespace && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s in the base", kind, namespace, name)
	return k8sObject{}
}

// envOf returns a container's env values and the fieldRef paths of its
// downward-API variables.
func envOf(c map[string]any) (values, fieldRefs map[string]string) {
	values, fieldRefs = map[string]string{}, map[string]string{}
	for _, e := range l(c["env"]) {
		name := s(m(e)["name"])
		values[name] = s(m(e)["value"])
		if fp := s(path(e, "valueFrom", "fieldRef", "fieldPath")); fp != "" {
			fieldRefs[name] = fp
		}
	}
	return values, fieldRefs
}

// scriptMount returns where container c mounts the ConfigMap redis-cluster.
func scriptMount(t *testing.T, w k8sObject, c map[string]any) string {
	t.Helper()
	vol := ""
	for _, v := range l(podSpec(w)["volumes"]) {
		if s(path(v, "configMap", "name")) == "redis-cluster" {
			vol = s(m(v)["name"])
		}
	}
	for _, vm := range l(c["volumeMounts"]) {
		if s(m(vm)["name"]) == vol && vol != "" {
			return s(m(vm)["mountPath"])
		}
	}
	t.Errorf("%v: the ConfigMap redis-cluster is not mounted", w)
	return ""
}

// k8sPodNames are the six nodes' stable names, as the pods announce them.
func k8sPodNames() []string {
	var out []string
	for i := range redisNodes {
		out = append(out, fmt.Sprintf("redis-%d.redis.$(POD_NAMESPACE).svc.cluster.local", i))
	}
	return out
}

// TestK8sRunsARedisCluster: the StatefulSet of six nodes running
// redis-node.sh from the ConfigMap (the compose scripts byte for byte), the
// headless Service redis over them that publishes not-ready pods (the nodes
// and the Job meet before the cluster exists), nodes.conf on a volume claim,
// each pod announcing its stable DNS name, a PodDisruptionBudget, the Job
// running redis-cluster-init.sh on exactly those names.
func TestK8sRunsARedisCluster(t *testing.T) {
	objs := k8sBase(t)
	cm := k8sOne(t, objs, "ConfigMap", "platform", "redis-cluster")
	for key, file := range map[string]string{"redis-node.sh": redisNodeScript, "redis-cluster-init.sh": redisInitScript} {
		if s(path(cm.doc, "data", key)) != string(repoFile(t, file)) {
			t.Errorf("ConfigMap redis-cluster %s differs from %s", key, file)
		}
	}

	sts := k8sOne(t, objs, "StatefulSet", "platform", "redis")
	spec := m(sts.doc["spec"])
	if spec["replicas"] != redisNodes || s(spec["serviceName"]) != "redis" || s(spec["podManagementPolicy"]) != "Parallel" {
		t.Errorf("StatefulSet redis: replicas %v serviceName %v podManagementPolicy %v; want %d, redis, Parallel (the cluster needs every node before one is ready)",
			spec["replicas"], spec["serviceName"], spec["podManagementPolicy"], redisNodes)
	}
	c := containers(sts)[0]
	if !strings.HasPrefix(s(c["image"]), "redis:7.") {
		t.Errorf("redis: image %s, want redis 7", c["image"])
	}
	if want := scriptMount(t, sts, c) + "/redis-node.sh"; !slices.Contains(strList(c["command"]), want) {
		t.Errorf("redis: command %v does not run %s", c["command"], want)
	}
	values, refs := envOf(c)
	if refs["POD_NAME"] != "metadata.name" || refs["POD_NAMESPACE"] != "metadata.namespace" ||
		values["REDIS_ANNOUNCE_HOSTNAME"] != "$(POD_NAME).redis.$(POD_NAMESPACE).svc.cluster.local" {
		t.Errorf("redis: REDIS_ANNOUNCE_HOSTNAME %q (POD_NAME from %q, POD_NAMESPACE from %q); want the pod's DNS name under the headless Service redis",
			values["REDIS_ANNOUNCE_HOSTNAME"], refs["POD_NAME"], refs["POD_NAMESPACE"])
	}
	ports := map[string]int{}
	for _, p := range l(c["ports"]) {
		ports[s(m(p)["name"])], _ = m(p)["containerPort"].(int)
	}
	if ports["redis"] != 6379 || ports["bus"] != 16379 {
		t.Errorf("redis: ports %v, want redis 6379 and bus 16379", ports)
	}
	if cmd := strings.Join(strList(path(c, "readinessProbe", "exec", "command")), " "); !strings.Contains(cmd, "cluster_state:ok") {
		t.Errorf("redis: readiness %q: a node is ready when it is in a healthy cluster (cluster_state:ok)", cmd)
	}
	mounts := map[string]string{}
	for _, vm := range l(c["volumeMounts"]) {
		mounts[s(m(vm)["mountPath"])] = s(m(vm)["name"])
	}
	claims := map[string]bool{}
	for _, vct := range l(spec["volumeClaimTemplates"]) {
		claims[s(path(vct, "metadata", "name"))] = true
	}
	if !claims[mounts["/data"]] {
		t.Errorf("redis: /data is %q, not a volume claim: nodes.conf must survive a restart", mounts["/data"])
	}
	for _, v := range l(podSpec(sts)["volumes"]) {
		if s(m(v)["name"]) == mounts["/run/secrets"] && s(path(v, "secret", "secretName")) != "redis-secrets" {
			t.Errorf("redis: /run/secrets is not the Secret redis-secrets")
		}
	}
	podLabels := podLabels(sts)

	svc := k8sOne(t, objs, "Service", "platform", "redis")
	if svc.namespace() != sts.namespace() || s(path(svc.doc, "spec", "clusterIP")) != "None" ||
		path(svc.doc, "spec", "publishNotReadyAddresses") != true || !labelsMatch(m(path(svc.doc, "spec", "selector")), podLabels) {
		t.Errorf("Service %s/redis: want headless (clusterIP None), publishNotReadyAddresses, selecting the StatefulSet's pods: %v", svc.namespace(), svc.doc["spec"])
	}

	pdbOK := false
	for _, p := range byKind(objs, "PodDisruptionBudget") {
		if p.namespace() == sts.namespace() && labelsMatch(m(path(p.doc, "spec", "selector", "matchLabels")), podLabels) {
			pdbOK = path(p.doc, "spec", "maxUnavailable") == 1
		}
	}
	if !pdbOK {
		t.Error("no PodDisruptionBudget with maxUnavailable 1 over the Redis nodes")
	}

	job := k8sOne(t, objs, "Job", "platform", "redis-cluster-init")
	jc := containers(job)[0]
	if want := scriptMount(t, job, jc) + "/redis-cluster-init.sh"; !slices.Contains(strList(jc["command"]), want) {
		t.Errorf("Job redis-cluster-init: command %v does not run %s", jc["command"], want)
	}
	jv, jrefs := envOf(jc)
	if got := strings.Fields(jv["REDIS_NODES"]); !slices.Equal(got, k8sPodNames()) || jrefs["POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("Job redis-cluster-init: REDIS_NODES %v, want %v", got, k8sPodNames())
	}
	jm := map[string]bool{}
	for _, vm := range l(jc["volumeMounts"]) {
		jm[s(m(vm)["mountPath"])] = true
	}
	if !jm["/run/secrets"] {
		t.Error("Job redis-cluster-init: no /run/secrets (redis_password)")
	}
}

// TestK8sRedisClientsAreClusterClients: every user of Redis names the
// headless Service as a Cluster (kong.yml from edge through the
// ExternalName redis).
func TestK8sRedisClientsAreClusterClients(t *testing.T) {
	checkKongYMLRedisRecords(t)
	objs := k8sBase(t)
	if ext := k8sOne(t, objs, "Service", "edge", "redis"); s(path(ext.doc, "spec", "externalName")) != "redis.platform.svc.cluster.local" {
		t.Error("edge: the ExternalName redis does not name redis.platform.svc.cluster.local (kong.yml's seed)")
	}
	users := 0
	for _, w := range byKind(objs, "Deployment") {
		for _, c := range containers(w) {
			values, _ := envOf(c)
			for _, v := range []string{"REDIS_ADDR", "AUDIT_REDIS_ADDR"} {
				addr, ok := values[v]
				if !ok {
					continue
				}
				users++
				flag := strings.TrimSuffix(v, "ADDR") + "CLUSTER"
				if addr != redisSeed || values[flag] != "true" {
					t.Errorf("%v: %s=%q %s=%q, want %s and true", w, v, addr, flag, values[flag], redisSeed)
				}
			}
		}
	}
	if users == 0 {
		t.Error("no Deployment sets REDIS_ADDR")
	}
}

// policyPeers names the pods a NetworkPolicy peer admits, "namespace/name"
// (name from app.kubernetes.io/name; "*" when the peer selects more).
func policyPeers(p k8sObject, peer map[string]any) []string {
	ns := p.namespace()
	if sel := m(peer["namespaceSelector"]); sel != nil {
		ns = s(path(sel, "matchLabels", "kubernetes.io/metadata.name"))
		if ns == "" {
			ns = "*"
		}
	}
	ps := m(peer["podSelector"])
	if name := s(path(ps, "matchLabels", "app.kubernetes.io/name")); name != "" {
		return []string{ns + "/" + name}
	}
	var out []string
	for _, e := range l(ps["matchExpressions"]) {
		if s(m(e)["key"]) == "app.kubernetes.io/name" && s(m(e)["operator"]) == "In" {
			for _, v := range strList(m(e)["values"]) {
				out = append(out, ns+"/"+v)
			}
		}
	}
	if len(out) == 0 {
		out = []string{ns + "/*"}
	}
	return out
}

// TestK8sRedisPoliciesOpenTheClientPortAndTheBus: 6379 from exactly Kong,
// llm-api, the init Job and the other nodes; the cluster bus 16379 between
// the nodes only; the nodes go out only to each other on those two ports,
// and each client may go out to them on 6379.
func TestK8sRedisPoliciesOpenTheClientPortAndTheBus(t *testing.T) {
	const nodes = "platform/redis"
	wantIn := map[int][]string{
		6379:  {"edge/kong", "platform/llm-api", "platform/redis", "platform/redis-cluster-init"},
		16379: {"platform/redis"},
	}
	gotIn := map[int][]string{}
	var gotOut []string
	clientsOut := map[string]bool{}
	for _, p := range byKind(k8sBase(t), "NetworkPolicy") {
		for _, target := range policyPeers(p, map[string]any{"podSelector": path(p.doc, "spec", "podSelector")}) {
			for _, r := range l(path(p.doc, "spec", "ingress")) {
				for _, port := range l(m(r)["ports"]) {
					n, _ := m(port)["port"].(int)
					for _, peer := range l(m(r)["from"]) {
						if target == nodes || target == "platform/*" {
							gotIn[n] = append(gotIn[n], policyPeers(p, m(peer))...)
						}
					}
				}
			}
			for _, r := range l(path(p.doc, "spec", "egress")) {
				for _, peer := range l(m(r)["to"]) {
					to := policyPeers(p, m(peer))
					if !slices.Contains(to, nodes) {
						continue
					}
					for _, port := range l(m(r)["ports"]) {
						n, _ := m(port)["port"].(int)
						if target == nodes {
							gotOut = append(gotOut, strconv.Itoa(n))
						} else if n == 6379 {
							clientsOut[target] = true
						} else {
							t.Errorf("%v: %s may reach the Redis nodes on %d (only 6379 is for clients)", p, target, n)
						}
					}
				}
				if target == nodes {
					for _, peer := range l(m(r)["to"]) {
						if to := policyPeers(p, m(peer)); !slices.Equal(to, []string{nodes}) {
							t.Errorf("%v: the Redis nodes may go out to %v (only to each other)", p, to)
						}
					}
				}
			}
		}
	}
	for port, want := range wantIn {
		got := gotIn[port]
		slices.Sort(got)
		got = slices.Compact(got)
		if !slices.Equal(got, want) {
			t.Errorf("Redis nodes' port %d admits %v, want %v", port, got, want)
		}
	}
	for port := range gotIn {
		if _, ok := wantIn[port]; !ok {
			t.Errorf("Redis nodes' port %d is open (only 6379 and 16379)", port)
		}
	}
	slices.Sort(gotOut)
	if !slices.Equal(slices.Compact(gotOut), []string{"16379", "6379"}) {
		t.Errorf("the Redis nodes go out to each other on %v, want 6379 (replication) and 16379 (the bus)", gotOut)
	}
	for _, c := range wantIn[6379] {
		if c != nodes && !clientsOut[c] {
			t.Errorf("%s may not go out to the Redis nodes' 6379", c)
		}
	}
}

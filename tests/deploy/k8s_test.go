package deploy

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/tests/deploy/secretgen"
)

var k8sNamespaces = []string{"edge", "platform", "mcp"}

// workloadKinds are the kinds that run pods in the base.
var workloadKinds = []string{"Deployment", "StatefulSet", "Job"}

type k8sObject struct {
	file string
	doc  map[string]any
}

func (o k8sObject) kind() string      { return s(o.doc["kind"]) }
func (o k8sObject) name() string      { return s(path(o.doc, "metadata", "name")) }
func (o k8sObject) namespace() string { return s(path(o.doc, "metadata", "namespace")) }
func (o k8sObject) String() string {
	return o.file + ": " + o.kind() + " " + o.namespace() + "/" + o.name()
}

// k8sBase reads kustomization.yaml and every resource it lists.
func k8sBase(t *testing.T) []k8sObject {
	t.Helper()
	kz := yamlDocs(t, "k8s/kustomization.yaml")[0]
	if s(kz["kind"]) != "Kustomization" {
		t.Fatalf("k8s/kustomization.yaml: kind %v", kz["kind"])
	}
	var out []k8sObject
	for _, r := range strList(kz["resources"]) {
		rel := filepath.Join("k8s", r)
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Fatalf("kustomization lists %s: %v", r, err)
		}
		for _, d := range yamlDocs(t, rel) {
			o := k8sObject{rel, d}
			if s(d["apiVersion"]) == "" || o.kind() == "" || o.name() == "" {
				t.Fatalf("%s: an object without apiVersion, kind or metadata.name", rel)
			}
			out = append(out, o)
		}
	}
	// Every YAML file under k8s/ is listed (nothing silently left out);
	// k8s/components/ holds optional kustomize components, each with its
	// own kustomization (TestK8sCertManagerComponentIssuesWhatTheBaseMounts).
	err := filepath.WalkDir(filepath.Join(root, "k8s"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "components" {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || filepath.Base(p) == "kustomization.yaml" {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(root, "k8s"), p)
		if !slices.Contains(strList(kz["resources"]), filepath.ToSlash(rel)) {
			t.Errorf("k8s/%s is not in kustomization.yaml's resources", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func byKind(objs []k8sObject, kinds ...string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if slices.Contains(kinds, o.kind()) {
			out = append(out, o)
		}
	}
	return out
}

func podSpec(o k8sObject) map[string]any { return m(path(o.doc, "spec", "template", "spec")) }

func containers(o k8sObject) []map[string]any {
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		for _, c := range l(podSpec(o)[key]) {
			out = append(out, m(c))
		}
	}
	return out
}

func podLabels(o k8sObject) map[string]any {
	return m(path(o.doc, "spec", "template", "metadata", "labels"))
}

func TestK8sBaseResolvesAndDeclaresItsNamespaces(t *testing.T) {
	objs := k8sBase(t)
	var ns []string
	for _, o := range byKind(objs, "Namespace") {
		ns = append(ns, o.name())
	}
	slices.Sort(ns)
	want := slices.Clone(k8sNamespaces)
	slices.Sort(want)
	if !slices.Equal(ns, want) {
		t.Errorf("namespaces %v, want %v", ns, want)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if o.kind() == "Namespace" {
			continue
		}
		if !slices.Contains(k8sNamespaces, o.namespace()) {
			t.Errorf("%v: namespace %q is not one of %v", o, o.namespace(), k8sNamespaces)
		}
		key := o.kind() + "/" + o.namespace() + "/" + o.name()
		if seen[key] {
			t.Errorf("%v is declared twice", o)
		}
		seen[key] = true
		if o.kind() == "Secret" {
			t.Errorf("%v: secrets are created out of band (README), never committed", o)
		}
	}
	for _, want := range []string{"kong", "llm-api", "media-api", "mcp-tools", "keycloak", "redis", "postgres"} {
		found := false
		for _, o := range byKind(objs, "Deployment", "StatefulSet") {
			found = found || o.name() == want
		}
		if !found {
			t.Errorf("no workload %q", want)
		}
	}
}

// TestK8sKustomizeBuilds renders the base with kubectl's built-in kustomize
// when kubectl is installed (it is not required: the test above resolves the
// file list itself).
func TestK8sKustomizeBuilds(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; the file list is checked by TestK8sBaseResolvesAndDeclaresItsNamespaces")
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, "k8s")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize k8s: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "\nkind: "); n < len(k8sBase(t))-1 {
		t.Errorf("kustomize rendered %d objects, the base lists %d", n+1, len(k8sBase(t)))
	}
}

func TestK8sEveryNamespaceDeniesByDefault(t *testing.T) {
	objs := k8sBase(t)
	for _, ns := range k8sNamespaces {
		found := false
		for _, o := range byKind(objs, "NetworkPolicy") {
			spec := m(o.doc["spec"])
			if o.namespace() != ns || len(m(spec["podSelector"])) != 0 {
				continue
			}
			types := strList(spec["policyTypes"])
			if slices.Contains(types, "Ingress") && slices.Contains(types, "Egress") &&
				spec["ingress"] == nil && spec["egress"] == nil {
				found = true
			}
		}
		if !found {
			t.Errorf("namespace %s has no default-deny (ingress and egress) NetworkPolicy", ns)
		}
	}
	// Every workload is selected by a policy of its own (besides the
	// namespace-wide ones), so what it may do is written down.
	for _, w := range byKind(objs, workloadKinds...) {
		found := false
		for _, p := range byKind(objs, "NetworkPolicy") {
			sel := m(path(p.doc, "spec", "podSelector", "matchLabels"))
			if p.namespace() == w.namespace() && len(sel) > 0 && labelsMatch(sel, podLabels(w)) {
				found = true
			}
		}
		if !found {
			t.Errorf("%v: no NetworkPolicy selects it", w)
		}
	}
}

func labelsMatch(sel, labels map[string]any) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestK8sOnlyKongIsOpenAndOnlyLLMAPIAndMCPToolsGoOut: an ingress rule
// without "from" (anyone) exists only for Kong's proxy port; egress to
// ipBlocks only for llm-api and mcp-tools, never to private or metadata
// ranges.
func TestK8sOnlyKongIsOpenAndOnlyLLMAPIAndMCPToolsGoOut(t *testing.T) {
	for _, p := range byKind(k8sBase(t), "NetworkPolicy") {
		target := s(path(p.doc, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name"))
		for _, r := range l(path(p.doc, "spec", "ingress")) {
			if m(r)["from"] == nil {
				ports := l(m(r)["ports"])
				if target != "kong" || len(ports) != 1 || m(ports[0])["port"] != 8000 {
					t.Errorf("%v: an ingress rule open to everyone (only Kong's proxy port 8000 may be)", p)
				}
			}
		}
		for _, r := range l(path(p.doc, "spec", "egress")) {
			if m(r)["to"] == nil {
				t.Errorf("%v: an egress rule to everywhere", p)
			}
			for _, peer := range l(m(r)["to"]) {
				ib := m(m(peer)["ipBlock"])
				if ib == nil {
					continue
				}
				if target != "llm-api" && target != "mcp-tools" {
					t.Errorf("%v: egress to %v; docs/architecture.md: only llm-api and mcp-tools go out", p, ib["cidr"])
				}
				except := strList(ib["except"])
				for _, private := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} {
					if s(ib["cidr"]) == "0.0.0.0/0" && !slices.Contains(except, private) {
						t.Errorf("%v: egress to 0.0.0.0/0 does not except %s", p, private)
					}
				}
			}
		}
	}
}

func TestK8sWorkloadsAreNonRootReadOnlyAndLimited(t *testing.T) {
	for _, w := range byKind(k8sBase(t), workloadKinds...) {
		pod := podSpec(w)
		psc := m(pod["securityContext"])
		if auto, ok := pod["automountServiceAccountToken"].(bool); !ok || auto {
			t.Errorf("%v: automountServiceAccountToken must be false (nothing here talks to the API server)", w)
		}
		if s(path(psc, "seccompProfile", "type")) != "RuntimeDefault" {
			t.Errorf("%v: no RuntimeDefault seccomp profile", w)
		}
		for _, c := range containers(w) {
			at := w.String() + " container " + s(c["name"])
			sc := m(c["securityContext"])
			nonRoot, _ := psc["runAsNonRoot"].(bool)
			if v, ok := sc["runAsNonRoot"].(bool); ok {
				nonRoot = v
			}
			uid, ok := psc["runAsUser"].(int)
			if v, ok2 := sc["runAsUser"].(int); ok2 {
				uid, ok = v, true
			}
			if !nonRoot || !ok || uid == 0 {
				t.Errorf("%s: must run as a numeric non-root user with runAsNonRoot", at)
			}
			if ro, _ := sc["readOnlyRootFilesystem"].(bool); !ro {
				t.Errorf("%s: readOnlyRootFilesystem is not true", at)
			}
			if esc, ok := sc["allowPrivilegeEscalation"].(bool); !ok || esc {
				t.Errorf("%s: allowPrivilegeEscalation must be false", at)
			}
			if !slices.Equal(strList(path(sc, "capabilities", "drop")), []string{"ALL"}) || path(sc, "capabilities", "add") != nil {
				t.Errorf("%s: capabilities must drop ALL and add none", at)
			}
			for _, kind := range []string{"requests", "limits"} {
				r := m(path(c, "resources", kind))
				if r["cpu"] == nil || r["memory"] == nil {
					t.Errorf("%s: resources.%s needs cpu and memory", at, kind)
				}
			}
			checkImage(t, at, s(c["image"]))
			// A Job's container runs to completion: nothing to probe.
			if w.kind() != "Job" && (c["readinessProbe"] == nil || c["livenessProbe"] == nil) {
				t.Errorf("%s: needs readiness and liveness probes", at)
			}
		}
	}
}

// Our Go services are probed on their internal port: /readyz, /healthz.
func TestK8sServicesProbeHealthzAndReadyzOnTheInternalPort(t *testing.T) {
	for _, w := range byKind(k8sBase(t), "Deployment") {
		for _, c := range containers(w) {
			img := s(c["image"])
			if !strings.HasPrefix(img, "edgeguard/llm-api:") && !strings.HasPrefix(img, "edgeguard/media-api:") && !strings.HasPrefix(img, "edgeguard/mcp-tools:") {
				continue
			}
			ports := map[string]int{}
			for _, p := range l(c["ports"]) {
				ports[s(m(p)["name"])], _ = m(p)["containerPort"].(int)
			}
			if ports["public"] != 8080 || ports["internal"] != 8081 {
				t.Errorf("%v: ports %v, want public 8080 and internal 8081", w, ports)
			}
			for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
				hg := m(path(c, probe, "httpGet"))
				if s(hg["path"]) != want || (s(hg["port"]) != "internal" && hg["port"] != 8081) {
					t.Errorf("%v: %s %v, want GET %s on the internal port", w, probe, hg, want)
				}
			}
		}
	}
}

// TestK8sSecretsAreMountedFiles: no secret-like env value; every *_FILE
// points into a mounted Secret volume; Secret keys are the generator's file
// names (README: kubectl create secret --from-file on its output).
func TestK8sSecretsAreMountedFiles(t *testing.T) {
	gen := secretgen.All()
	for _, w := range byKind(k8sBase(t), workloadKinds...) {
		secretVols := map[string]map[string]any{}
		for _, v := range l(podSpec(w)["volumes"]) {
			if sec := m(m(v)["secret"]); sec != nil {
				secretVols[s(m(v)["name"])] = sec
				for _, it := range l(sec["items"]) {
					// a kubernetes.io/tls Secret's keys (cert-manager), mounted
					// under the generator's file names
					if slices.Contains([]string{"tls.crt", "tls.key", "ca.crt"}, s(m(it)["key"])) &&
						slices.Contains(gen, s(m(it)["path"])) {
						continue
					}
					if !slices.Contains(gen, s(m(it)["key"])) {
						t.Errorf("%v: secret key %q is not a generated file name (%v)", w, m(it)["key"], gen)
					}
				}
			}
		}
		for _, c := range containers(w) {
			var mounts []string
			for _, vm := range l(c["volumeMounts"]) {
				if _, ok := secretVols[s(m(vm)["name"])]; ok {
					mounts = append(mounts, s(m(vm)["mountPath"]))
					if ro, _ := m(vm)["readOnly"].(bool); !ro {
						t.Errorf("%v: secret volume %s is not mounted readOnly", w, m(vm)["name"])
					}
				}
			}
			for _, e := range l(c["env"]) {
				name, value := s(m(e)["name"]), s(m(e)["value"])
				// The downward API (the pod's own name, its namespace) is no
				// secret; anything else from valueFrom (secretKeyRef…) is.
				if vf := m(m(e)["valueFrom"]); vf != nil && (len(vf) != 1 || vf["fieldRef"] == nil) {
					t.Errorf("%v: %s from valueFrom; mount secrets as files instead", w, name)
				}
				if strings.HasSuffix(name, "_FILE") && !configFiles[name] {
					inMount := false
					for _, mp := range mounts {
						inMount = inMount || strings.HasPrefix(value, mp+"/")
					}
					if !inMount {
						t.Errorf("%v: %s=%s is not inside a mounted Secret volume %v", w, name, value, mounts)
					}
					if !slices.Contains(gen, filepath.Base(value)) {
						t.Errorf("%v: %s names %s, not a generated secret file", w, name, filepath.Base(value))
					}
				} else if secretName.MatchString(name) && value != "" {
					t.Errorf("%v: %s carries a value; use %s_FILE", w, name, name)
				}
			}
		}
	}
}

func TestK8sKongAndKeycloakMatchDesign(t *testing.T) {
	objs := k8sBase(t)
	var kong, keycloak, llmAPI k8sObject
	for _, w := range byKind(objs, "Deployment") {
		switch w.name() {
		case "kong":
			kong = w
		case "keycloak":
			keycloak = w
		case "llm-api":
			llmAPI = w
		}
	}
	kc := containers(keycloak)[0]
	args := strList(kc["args"])
	if len(args) == 0 || args[0] != "start" {
		t.Fatalf("keycloak args %q: want start (production mode)", args)
	}
	checkKeycloakArgs(t, "k8s", args, "127.0.0.1:8080")
	issuer := keycloakFlags(args)["--hostname"] + "/realms/jan"
	for _, e := range l(containers(llmAPI)[0]["env"]) {
		if s(m(e)["name"]) == "AUTH_ISSUER" && s(m(e)["value"]) != issuer {
			t.Errorf("llm-api AUTH_ISSUER %q, Keycloak's issuer is %q", m(e)["value"], issuer)
		}
	}
	kc0 := containers(kong)[0]
	for _, e := range l(kc0["env"]) {
		if s(m(e)["name"]) == "KONG_TRUSTED_IPS" {
			checkTrustedIPs(t, "k8s KONG_TRUSTED_IPS", s(m(e)["value"]))
		}
	}
	// One notion of Kong's addresses: every service's TRUSTED_PROXIES is
	// Keycloak's --proxy-trusted-addresses, and narrow (never the pod CIDR).
	kongAddrs := keycloakFlags(args)["--proxy-trusted-addresses"]
	for _, w := range byKind(objs, "Deployment") {
		if !slices.Contains([]string{"llm-api", "media-api", "mcp-tools"}, w.name()) {
			continue
		}
		found := false
		for _, e := range l(containers(w)[0]["env"]) {
			if s(m(e)["name"]) == "TRUSTED_PROXIES" {
				found = true
				v := s(m(e)["value"])
				checkGatewayAddresses(t, w.name()+" TRUSTED_PROXIES", v)
				if v != kongAddrs {
					t.Errorf("%s: TRUSTED_PROXIES %q, Keycloak trusts %q: both are Kong's addresses", w.name(), v, kongAddrs)
				}
			}
		}
		if !found {
			t.Errorf("%s: no TRUSTED_PROXIES (every client would be Kong's pod address)", w.name())
		}
	}
	// kong.yml's secret files are in the kong-secrets volume at /etc/kong/secrets.
	items := map[string]bool{}
	for _, v := range l(podSpec(kong)["volumes"]) {
		for _, it := range l(path(v, "secret", "items")) {
			items["/etc/kong/secrets/"+s(m(it)["path"])] = true
		}
	}
	for f := range kongYMLFiles(t) {
		if !items[f] {
			t.Errorf("kong.yml reads %s; the kong Deployment does not mount it", f)
		}
	}
	// The prefix kong.conf names is a writable emptyDir.
	prefix := strings.TrimSuffix(kongConf(t)["prefix"], "/")
	mounted := false
	for _, vm := range l(kc0["volumeMounts"]) {
		mounted = mounted || s(m(vm)["mountPath"]) == prefix
	}
	if !mounted {
		t.Errorf("kong: the prefix %s is not a mounted volume (the root filesystem is read-only)", prefix)
	}
	// The ExternalName services make kong.yml's short upstream names resolve.
	for _, host := range []string{"llm-api", "media-api", "mcp-tools", "keycloak", "redis"} {
		found := false
		for _, o := range byKind(objs, "Service") {
			if o.namespace() == "edge" && o.name() == host && s(path(o.doc, "spec", "type")) == "ExternalName" {
				found = true
			}
		}
		if !found {
			t.Errorf("edge namespace: no ExternalName service %q for kong.yml's upstream", host)
		}
	}
}

// TestK8sPostgresInitIsComposes: the ConfigMap carries the same script.
func TestK8sPostgresInitIsComposes(t *testing.T) {
	want := string(repoFile(t, "compose/postgres-init/10-edgeguard.sh"))
	for _, o := range byKind(k8sBase(t), "ConfigMap") {
		if o.name() == "postgres-init" {
			if got := s(path(o.doc, "data", "10-edgeguard.sh")); got != want {
				t.Errorf("k8s postgres-init differs from compose/postgres-init/10-edgeguard.sh")
			}
			return
		}
	}
	t.Error("no postgres-init ConfigMap")
}

// TestK8sMetricsPortsAreOpenOnlyToPrometheus: the plugin servers' metrics
// listeners on the pod address (kong.conf) and Kong's status listener are
// admitted by the NetworkPolicies — so Prometheus can scrape them — and only
// from Prometheus in namespace monitoring; a rule admitting Prometheus opens
// nothing but metrics ports.
func TestK8sMetricsPortsAreOpenOnlyToPrometheus(t *testing.T) {
	kong := map[int]bool{}
	c := kongConf(t)
	for k, v := range c {
		f := strings.Fields(v)
		if i := slices.Index(f, "-metrics-listen"); strings.HasSuffix(k, "_start_cmd") && i >= 0 && i+1 < len(f) {
			host, port, err := net.SplitHostPort(f[i+1])
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			if net.ParseIP(host).IsUnspecified() {
				n, _ := strconv.Atoi(port)
				kong[n] = true
			}
		}
	}
	_, status, _ := net.SplitHostPort(c["status_listen"])
	n, _ := strconv.Atoi(status)
	kong[n] = true
	metricsPorts := map[string]map[int]bool{
		"kong": kong, "llm-api": {8081: true}, "media-api": {8081: true}, "mcp-tools": {8081: true}, "keycloak": {9000: true},
	}
	isPrometheus := func(peer map[string]any) bool {
		return s(path(peer, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name")) == "monitoring" &&
			s(path(peer, "podSelector", "matchLabels", "app.kubernetes.io/name")) == "prometheus"
	}
	targets := func(p k8sObject) []string {
		if name := s(path(p.doc, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name")); name != "" {
			return []string{name}
		}
		var out []string
		for _, e := range l(path(p.doc, "spec", "podSelector", "matchExpressions")) {
			if s(m(e)["key"]) == "app.kubernetes.io/name" && s(m(e)["operator"]) == "In" {
				out = append(out, strList(m(e)["values"])...)
			}
		}
		return out
	}
	scraped := map[int]bool{}
	for _, p := range byKind(k8sBase(t), "NetworkPolicy") {
		for _, r := range l(path(p.doc, "spec", "ingress")) {
			fromPrometheus, fromOthers := false, false
			for _, peer := range l(m(r)["from"]) {
				if isPrometheus(m(peer)) {
					fromPrometheus = true
				} else {
					fromOthers = true
				}
			}
			for _, port := range l(m(r)["ports"]) {
				n, _ := m(port)["port"].(int)
				for _, target := range targets(p) {
					metric := metricsPorts[target][n]
					if fromPrometheus && !metric {
						t.Errorf("%v: Prometheus admitted to %s port %d, which serves no metrics", p, target, n)
					}
					if target == "kong" && kong[n] {
						if fromOthers || !fromPrometheus {
							t.Errorf("%v: Kong's metrics port %d is open to more than Prometheus", p, n)
						}
						scraped[n] = true
					}
				}
			}
		}
	}
	for port := range kong {
		if !scraped[port] {
			t.Errorf("Kong's metrics port %d (kong.conf) is admitted by no NetworkPolicy: Prometheus cannot scrape it", port)
		}
	}
}

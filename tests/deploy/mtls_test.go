package deploy

// Static checks of the mTLS hop Kong → services in compose and Kubernetes
// (docs/architecture.md "Workload identity: mTLS from Kong to the
// services"): each service's public listener gets its certificate, its key
// and the CA of Kong's client certificate as mounted files and requires the
// edge's identity; Kong gets its client certificate and key as files its
// entrypoint hands to the env vault, and a kong.yml carrying the
// deployment's services CA instead of the image's placeholder.

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/tests/deploy/secretgen"
)

var mtlsServices = []string{"llm-api", "media-api", "mcp-tools"}

func TestComposeReachesTheServicesOverMTLS(t *testing.T) {
	svcs := composeServices(t)
	top := m(compose(t)["secrets"])
	fileOf := func(svc map[string]any, target string) string {
		src, ok := secretTargets(svc)[target]
		if !ok {
			return ""
		}
		return strings.TrimPrefix(s(m(top[src])["file"]), "./.secrets/")
	}
	for _, name := range mtlsServices {
		svc := svcs[name]
		e := env(t, svc)
		for v, want := range map[string]string{
			"TLS_CERT_FILE":      secretgen.ServiceCert(name),
			"TLS_KEY_FILE":       secretgen.ServiceKey(name),
			"TLS_CLIENT_CA_FILE": secretgen.MTLSCA,
		} {
			if got := fileOf(svc, e[v]); got != want {
				t.Errorf("%s: %s=%q mounts %q, want the generated %s", name, v, e[v], got, want)
			}
		}
		if e["TLS_CLIENT_IDENTITY"] != secretgen.EdgeClientURI {
			t.Errorf("%s: TLS_CLIENT_IDENTITY %q, want Kong's %s", name, e["TLS_CLIENT_IDENTITY"], secretgen.EdgeClientURI)
		}
		if e["STRICT"] != "true" || e["INSECURE_PLAIN_HTTP"] != "" {
			t.Errorf("%s: STRICT %q INSECURE_PLAIN_HTTP %q: production is strict and mTLS", name, e["STRICT"], e["INSECURE_PLAIN_HTTP"])
		}
	}
	kong := svcs["kong"]
	e := env(t, kong)
	for v, want := range map[string]string{
		"EDGEGUARD_EDGE_CLIENT_CERT_FILE": secretgen.EdgeClientCert,
		"EDGEGUARD_EDGE_CLIENT_KEY_FILE":  secretgen.EdgeClientKey,
	} {
		if got := fileOf(kong, e[v]); got != want {
			t.Errorf("kong: %s=%q mounts %q, want the generated %s", v, e[v], got, want)
		}
	}
	// the rendered kong.yml replaces the image's
	var cfg map[string]any
	for _, c := range l(kong["configs"]) {
		if s(m(c)["target"]) == "/etc/kong/kong.yml" {
			cfg = m(c)
		}
	}
	if cfg == nil {
		t.Fatal("kong: no config mounted at /etc/kong/kong.yml (the image's has the placeholder services CA)")
	}
	if file := s(m(m(compose(t)["configs"])[s(cfg["source"])])["file"]); file != "./.secrets/"+secretgen.KongYML {
		t.Errorf("kong's kong.yml comes from %q, want ./.secrets/%s (gen-secrets -kong-yml)", file, secretgen.KongYML)
	}
	if !strings.Contains(string(repoFile(t, "compose/gen-secrets.sh")), "-kong-yml") {
		t.Error("compose/gen-secrets.sh does not render kong.yml (-kong-yml)")
	}
}

func TestK8sReachesTheServicesOverMTLS(t *testing.T) {
	objs := k8sBase(t)
	mounted := func(w k8sObject, file string) (secret, key string) {
		for _, v := range l(podSpec(w)["volumes"]) {
			sec := m(m(v)["secret"])
			if sec == nil {
				continue
			}
			for _, c := range containers(w) {
				for _, vm := range l(c["volumeMounts"]) {
					if s(m(vm)["name"]) != s(m(v)["name"]) || filepath.Dir(file) != s(m(vm)["mountPath"]) {
						continue
					}
					for _, it := range l(sec["items"]) {
						if s(m(it)["path"]) == filepath.Base(file) {
							return s(sec["secretName"]), s(m(it)["key"])
						}
					}
				}
			}
		}
		return "", ""
	}
	envOf := func(w k8sObject) map[string]string {
		out := map[string]string{}
		for _, c := range containers(w) {
			for _, e := range l(c["env"]) {
				out[s(m(e)["name"])] = s(m(e)["value"])
			}
		}
		return out
	}
	found := map[string]bool{}
	for _, w := range byKind(objs, "Deployment") {
		e := envOf(w)
		switch {
		case slices.Contains(mtlsServices, w.name()):
			found[w.name()] = true
			for v, want := range map[string][2]string{
				"TLS_CERT_FILE":      {w.name() + "-tls", "tls.crt"},
				"TLS_KEY_FILE":       {w.name() + "-tls", "tls.key"},
				"TLS_CLIENT_CA_FILE": {w.name() + "-tls", "ca.crt"},
			} {
				if sec, key := mounted(w, e[v]); sec != want[0] || key != want[1] {
					t.Errorf("%v: %s=%q is %s/%s, want key %s of the Secret %s (cert-manager's)", w, v, e[v], sec, key, want[1], want[0])
				}
			}
			if e["TLS_CLIENT_IDENTITY"] != secretgen.EdgeClientURI || e["INSECURE_PLAIN_HTTP"] != "" || e["STRICT"] != "true" {
				t.Errorf("%v: TLS_CLIENT_IDENTITY %q INSECURE_PLAIN_HTTP %q STRICT %q", w, e["TLS_CLIENT_IDENTITY"], e["INSECURE_PLAIN_HTTP"], e["STRICT"])
			}
		case w.name() == "kong":
			found["kong"] = true
			for v, key := range map[string]string{"EDGEGUARD_EDGE_CLIENT_CERT_FILE": "tls.crt", "EDGEGUARD_EDGE_CLIENT_KEY_FILE": "tls.key"} {
				if sec, k := mounted(w, e[v]); sec != "kong-edge-client-tls" || k != key {
					t.Errorf("kong: %s=%q is %s/%s, want key %s of the Secret kong-edge-client-tls", v, e[v], sec, k, key)
				}
			}
			decl := e["KONG_DECLARATIVE_CONFIG"]
			ok := false
			for _, v := range l(podSpec(w)["volumes"]) {
				if cm := m(m(v)["configMap"]); s(cm["name"]) == "kong-declarative" {
					for _, c := range containers(w) {
						for _, vm := range l(c["volumeMounts"]) {
							ok = ok || (s(m(vm)["name"]) == s(m(v)["name"]) && decl == s(m(vm)["mountPath"])+"/kong.yml")
						}
					}
				}
			}
			if !ok {
				t.Errorf("kong: KONG_DECLARATIVE_CONFIG=%q is not the ConfigMap kong-declarative's kong.yml (the image's kong.yml has the placeholder services CA)", decl)
			}
		}
	}
	for _, n := range append(mtlsServices, "kong") {
		if !found[n] {
			t.Errorf("no Deployment %s", n)
		}
	}
}

// TestK8sCertManagerComponentIssuesWhatTheBaseMounts: the optional
// component k8s/components/cert-manager issues exactly the Secrets the base
// mounts, from one CA, ECDSA P-256 keys rotated at every renewal, short
// lifetimes; Kong's certificate carries the identity the services require,
// each service's the name Kong verifies first.
func TestK8sCertManagerComponentIssuesWhatTheBaseMounts(t *testing.T) {
	kz := yamlDocs(t, "k8s/components/cert-manager/kustomization.yaml")[0]
	if s(kz["kind"]) != "Component" {
		t.Fatalf("k8s/components/cert-manager: kind %v, want Component", kz["kind"])
	}
	certs := map[string]map[string]any{}
	issuers := map[string]map[string]any{}
	for _, r := range strList(kz["resources"]) {
		for _, d := range yamlDocs(t, filepath.Join("k8s/components/cert-manager", r)) {
			switch s(d["kind"]) {
			case "Certificate":
				certs[s(path(d, "metadata", "namespace"))+"/"+s(path(d, "metadata", "name"))] = d
			case "ClusterIssuer":
				issuers[s(path(d, "metadata", "name"))] = d
			}
		}
	}
	want := map[string]struct {
		dns   []string
		uri   string
		usage string
	}{
		"edge/kong-edge-client-tls": {[]string{secretgen.EdgeClientDNS}, secretgen.EdgeClientURI, "client auth"},
		"platform/llm-api-tls":      {secretgen.TLSServices["llm-api"], "", "server auth"},
		"platform/media-api-tls":    {secretgen.TLSServices["media-api"], "", "server auth"},
		"mcp/mcp-tools-tls":         {secretgen.TLSServices["mcp-tools"], "", "server auth"},
	}
	for key, w := range want {
		c := certs[key]
		if c == nil {
			t.Errorf("no Certificate %s", key)
			continue
		}
		spec := m(c["spec"])
		if s(spec["secretName"]) != strings.SplitN(key, "/", 2)[1] {
			t.Errorf("%s: secretName %v", key, spec["secretName"])
		}
		if got := strList(spec["dnsNames"]); !slices.Equal(got, w.dns) {
			t.Errorf("%s: dnsNames %v, want %v (the first is what Kong verifies)", key, got, w.dns)
		}
		if got := strList(spec["uris"]); (w.uri == "" && len(got) != 0) || (w.uri != "" && !slices.Equal(got, []string{w.uri})) {
			t.Errorf("%s: uris %v, want %q", key, got, w.uri)
		}
		if !slices.Contains(strList(spec["usages"]), w.usage) {
			t.Errorf("%s: usages %v lack %q", key, spec["usages"], w.usage)
		}
		pk := m(spec["privateKey"])
		if s(pk["algorithm"]) != "ECDSA" || pk["size"] != 256 || s(pk["rotationPolicy"]) != "Always" {
			t.Errorf("%s: privateKey %v, want ECDSA 256 rotated at every renewal", key, pk)
		}
		if d := s(spec["duration"]); d != "24h" && d != "72h" {
			t.Errorf("%s: duration %q, want a short lifetime (24h services, 72h Kong)", key, d)
		}
		if ref := m(spec["issuerRef"]); s(ref["name"]) != "edgeguard-mtls" || s(ref["kind"]) != "ClusterIssuer" {
			t.Errorf("%s: issuerRef %v, want the CA ClusterIssuer edgeguard-mtls", key, ref)
		}
	}
	if len(certs) != len(want)+1 { // + the CA's own
		t.Errorf("%d Certificates, want %d", len(certs), len(want)+1)
	}
	if s(path(issuers["edgeguard-mtls"], "spec", "ca", "secretName")) != "edgeguard-mtls-ca" {
		t.Error("ClusterIssuer edgeguard-mtls is not the CA edgeguard-mtls-ca")
	}
}

package deploy

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/tests/deploy/secretgen"
)

const composeFile = "compose/docker-compose.yml"

// designNetworks is docs/architecture.md "Compose networks": which networks are internal and
// which services sit on each.
var designNetworks = map[string]struct {
	internal bool
	members  []string
}{
	"edge":    {false, []string{"kong"}},
	"private": {true, []string{"kong", "llm-api", "media-api", "mcp-tools", "keycloak", "postgres", "redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6", "redis-init"}},
	"mcp":     {true, []string{"mcp-tools"}},
	"egress":  {false, []string{"llm-api", "mcp-tools"}},
	"admin":   {false, []string{"keycloak"}},
}

func compose(t *testing.T) map[string]any {
	t.Helper()
	docs := yamlDocs(t, composeFile)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents", composeFile, len(docs))
	}
	return docs[0]
}

func composeServices(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for name, v := range m(compose(t)["services"]) {
		out[name] = m(v)
	}
	if len(out) == 0 {
		t.Fatal("compose has no services")
	}
	return out
}

// serviceNetworks accepts the list and the mapping forms.
func serviceNetworks(svc map[string]any) []string {
	var out []string
	switch n := svc["networks"].(type) {
	case []any:
		out = strList(n)
	case map[string]any:
		for k := range n {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// env returns a service's environment in either form.
func env(t *testing.T, svc map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := svc["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			switch x := v.(type) {
			case string:
				out[k] = x
			case nil:
				out[k] = ""
			default:
				t.Fatalf("environment %s: %T; quote values in compose", k, v)
			}
		}
	case []any:
		for _, kv := range strList(e) {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
	}
	return out
}

// secretTargets maps the in-container paths of a service's secrets to the
// top-level secret names.
func secretTargets(svc map[string]any) map[string]string {
	out := map[string]string{}
	for _, e := range l(svc["secrets"]) {
		var src, target string
		if name, ok := e.(string); ok {
			src, target = name, name
		} else {
			src, target = s(m(e)["source"]), s(m(e)["target"])
			if target == "" {
				target = src
			}
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		out[target] = src
	}
	return out
}

func TestComposeNetworksAreDesigns(t *testing.T) {
	nets := m(compose(t)["networks"])
	if len(nets) != len(designNetworks) {
		t.Errorf("networks %v, want exactly %v", keysOf(nets), keysOf(designNetworks))
	}
	for name, want := range designNetworks {
		n, ok := nets[name]
		if !ok {
			t.Errorf("network %q missing", name)
			continue
		}
		internal, _ := m(n)["internal"].(bool)
		if internal != want.internal {
			t.Errorf("network %q: internal %v, want %v", name, internal, want.internal)
		}
	}
	members := map[string][]string{}
	for name, svc := range composeServices(t) {
		for _, n := range serviceNetworks(svc) {
			members[n] = append(members[n], name)
		}
		if svc["network_mode"] != nil {
			t.Errorf("%s: network_mode %v (host networking bypasses the isolation)", name, svc["network_mode"])
		}
	}
	for name, want := range designNetworks {
		got := members[name]
		sort.Strings(got)
		w := slices.Clone(want.members)
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Errorf("network %q has %v, docs/architecture.md says %v", name, got, w)
		}
	}
	for n := range members {
		if _, ok := designNetworks[n]; !ok {
			t.Errorf("a service joins undeclared network %q", n)
		}
	}
}

func TestComposePublishesOnlyKongProxyAndKeycloakOnLoopback(t *testing.T) {
	conf := kongConf(t)
	_, proxyPort, err := net.SplitHostPort(strings.Fields(conf["proxy_listen"])[0])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"kong":     {"8000:" + proxyPort},
		"keycloak": {"127.0.0.1:8180:8080"},
	}
	for name, svc := range composeServices(t) {
		var got []string
		for _, p := range l(svc["ports"]) {
			str, ok := p.(string)
			if !ok {
				t.Errorf("%s: port %v: use the short string form so the host address is explicit", name, p)
				continue
			}
			got = append(got, str)
		}
		if !slices.Equal(got, want[name]) {
			t.Errorf("%s publishes %q, want %q", name, got, want[name])
		}
		internalOnly := true
		for _, n := range serviceNetworks(svc) {
			internalOnly = internalOnly && designNetworks[n].internal
		}
		if len(got) > 0 && internalOnly {
			t.Errorf("%s publishes ports but sits on internal networks only (Docker cannot publish them)", name)
		}
	}
}

func TestComposeKeycloakRunsInProductionModeWithDesignsHostnames(t *testing.T) {
	svcs := composeServices(t)
	kc := svcs["keycloak"]
	args := strList(kc["command"])
	if len(args) == 0 || args[0] != "start" {
		t.Fatalf("keycloak command %q: want start (production mode)", args)
	}
	checkKeycloakArgs(t, "compose", args, "127.0.0.1:8180")
	issuer := keycloakFlags(args)["--hostname"] + "/realms/jan"
	if got := env(t, svcs["llm-api"])["AUTH_ISSUER"]; got != issuer {
		t.Errorf("llm-api AUTH_ISSUER %q, Keycloak's issuer is %q", got, issuer)
	}
}

// checkKeycloakArgs asserts docs/architecture.md "Keycloak hostname" on a command line;
// adminHost is the host:port the admin URL must name (where the HTTP port is
// reachable on loopback).
func checkKeycloakArgs(t *testing.T, where string, args []string, adminHost string) {
	t.Helper()
	joined := strings.Join(args, " ")
	if strings.Contains(joined, "start-dev") {
		t.Errorf("%s: Keycloak runs start-dev", where)
	}
	f := keycloakFlags(args)
	want := map[string]string{
		"--hostname-backchannel-dynamic": "true",
		"--proxy-headers":                "xforwarded",
		"--http-enabled":                 "true",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s: Keycloak %s=%q, want %q", where, k, f[k], v)
		}
	}
	// Keycloak believes X-Forwarded-* from every peer unless told whose.
	if f["--proxy-trusted-addresses"] == "" {
		t.Errorf("%s: Keycloak has no --proxy-trusted-addresses: any client could choose the address it logs", where)
	}
	checkGatewayAddresses(t, where+" Keycloak --proxy-trusted-addresses", f["--proxy-trusted-addresses"])
	pub, err := url.Parse(f["--hostname"])
	if err != nil || pub.Scheme == "" || pub.Host == "" {
		t.Errorf("%s: --hostname %q must be the full public URL (the gateway's)", where, f["--hostname"])
	}
	if pub != nil && !slices.Contains(kongYMLKeycloakHosts(t), pub.Hostname()) {
		t.Errorf("%s: Keycloak's public host %q is not among kong.yml's Keycloak route hosts %q", where, pub.Hostname(), kongYMLKeycloakHosts(t))
	}
	issuer := f["--hostname"] + "/realms/jan"
	if !kongYMLIssuers(t)[issuer] {
		t.Errorf("%s: Keycloak's issuer %q is not kong.yml's (%v)", where, issuer, keysOf(kongYMLIssuers(t)))
	}
	admin, err := url.Parse(f["--hostname-admin"])
	if err != nil || admin.Host != adminHost || !net.ParseIP(admin.Hostname()).IsLoopback() {
		t.Errorf("%s: --hostname-admin %q, want a loopback URL on %s", where, f["--hostname-admin"], adminHost)
	}
	if !strings.HasPrefix(f["--db-url"], "jdbc:postgresql://") {
		t.Errorf("%s: --db-url %q: want PostgreSQL", where, f["--db-url"])
	}
	if !slices.Contains(args, "--import-realm") {
		t.Errorf("%s: no --import-realm", where)
	}
}

// TestComposeHasNoInlineSecrets: secrets are files (compose secrets:, from
// compose/.secrets/, which git ignores), never environment values.
func TestComposeHasNoInlineSecrets(t *testing.T) {
	raw := string(repoFile(t, composeFile))
	if re := regexp.MustCompile(`(?m)_(PASSWORD|SECRET|TOKEN|PEPPER)\s*[=:]\s*\S`); re.MatchString(raw) {
		t.Errorf("an inline secret-like assignment: %q", re.FindString(raw))
	}
	top := m(compose(t)["secrets"])
	gen := secretgen.All()
	for name, v := range top {
		file := s(m(v)["file"])
		if !strings.HasPrefix(file, "./.secrets/") {
			t.Errorf("secret %s: file %q, want ./.secrets/<name> (generated, git-ignored)", name, file)
			continue
		}
		if !slices.Contains(gen, strings.TrimPrefix(file, "./.secrets/")) {
			t.Errorf("secret %s: %s is not written by compose/gen-secrets.sh (secretgen)", name, file)
		}
		if m(v)["environment"] != nil {
			t.Errorf("secret %s comes from the environment", name)
		}
	}
	if !strings.Contains(string(repoFile(t, "compose/.gitignore")), "/.secrets/") {
		t.Error("compose/.gitignore does not ignore /.secrets/")
	}
	for name, svc := range composeServices(t) {
		mounted := secretTargets(svc)
		for target, src := range mounted {
			if _, ok := top[src]; !ok {
				t.Errorf("%s mounts undeclared secret %q", name, src)
			}
			_ = target
		}
		for k, v := range env(t, svc) {
			if strings.HasSuffix(k, "_FILE") && !configFiles[k] {
				if _, ok := mounted[v]; !ok {
					t.Errorf("%s: %s=%s is not a mounted secret", name, k, v)
				}
				continue
			}
			if secretName.MatchString(k) && v != "" {
				t.Errorf("%s: %s carries a value; use %s_FILE", name, k, k)
			}
		}
	}
}

// TestComposeKongMountsEverySecretKongYMLNames: each *_file of kong.yml is a
// secret target of the kong service.
func TestComposeKongMountsEverySecretKongYMLNames(t *testing.T) {
	mounted := secretTargets(composeServices(t)["kong"])
	for f := range kongYMLFiles(t) {
		if _, ok := mounted[f]; !ok {
			t.Errorf("kong.yml reads %s; compose does not mount it into kong", f)
		}
	}
}

func TestComposeServicesAreHardened(t *testing.T) {
	for name, svc := range composeServices(t) {
		if ro, _ := svc["read_only"].(bool); !ro {
			t.Errorf("%s: read_only is not true", name)
		}
		if !slices.Equal(strList(svc["cap_drop"]), []string{"ALL"}) {
			t.Errorf("%s: cap_drop %v, want [ALL]", name, svc["cap_drop"])
		}
		if !slices.Contains(strList(svc["security_opt"]), "no-new-privileges:true") {
			t.Errorf("%s: no no-new-privileges", name)
		}
		uid, _, _ := strings.Cut(s(svc["user"]), ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("%s: user %q, want a numeric non-root uid", name, svc["user"])
		}
		// A one-shot (redis-init) exits: what follows it waits for
		// service_completed_successfully, not for a health state.
		if len(strList(path(svc, "healthcheck", "test"))) == 0 && svc["restart"] != "no" {
			t.Errorf("%s: no healthcheck", name)
		}
		limits := m(path(svc, "deploy", "resources", "limits"))
		if s(limits["cpus"]) == "" || s(limits["memory"]) == "" {
			t.Errorf("%s: deploy.resources.limits needs cpus and memory", name)
		}
		checkImage(t, name, s(svc["image"]))
		if b := m(svc["build"]); b != nil {
			df := filepath.Join("compose", s(b["context"]), s(b["dockerfile"]))
			if _, err := os.Stat(filepath.Join(root, df)); err != nil {
				t.Errorf("%s: build dockerfile %s: %v", name, df, err)
			}
		}
	}
}

// checkImage: an explicit tag, never latest.
func checkImage(t *testing.T, where, image string) {
	t.Helper()
	ref := image
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	_, tag, ok := strings.Cut(ref, ":")
	if image == "" || !ok || tag == "" || tag == "latest" {
		t.Errorf("%s: image %q needs an explicit version tag", where, image)
	}
}

// TestComposeServicesTrustOnlyKong: TRUSTED_PROXIES of every service and
// Keycloak's --proxy-trusted-addresses are Kong's fixed address on the
// private network, inside its subnet.
func TestComposeServicesTrustOnlyKong(t *testing.T) {
	c := compose(t)
	svcs := composeServices(t)
	kongIP := s(path(svcs["kong"], "networks", "private", "ipv4_address"))
	_, subnet, err := net.ParseCIDR(s(m(l(path(c, "networks", "private", "ipam", "config"))[0])["subnet"]))
	if err != nil || !subnet.Contains(net.ParseIP(kongIP)) {
		t.Fatalf("kong's private address %q is not in the private subnet (%v)", kongIP, err)
	}
	for name, svc := range svcs {
		if v, ok := env(t, svc)["TRUSTED_PROXIES"]; ok && v != kongIP {
			t.Errorf("%s: TRUSTED_PROXIES %q, want Kong's %s", name, v, kongIP)
		}
	}
	if got := keycloakFlags(strList(svcs["keycloak"]["command"]))["--proxy-trusted-addresses"]; got != kongIP {
		t.Errorf("keycloak: --proxy-trusted-addresses %q, want Kong's %s", got, kongIP)
	}
	if v := env(t, svcs["kong"])["KONG_TRUSTED_IPS"]; v != "" {
		checkTrustedIPs(t, "compose KONG_TRUSTED_IPS", v)
	}
}

// checkGatewayAddresses: a list of the gateway's own addresses (services'
// TRUSTED_PROXIES, Keycloak's --proxy-trusted-addresses) names addresses or
// narrow prefixes — at most a /24 (IPv6 /112) — never a whole network such
// as a cluster's pod CIDR, whose every pod could then choose the client
// address.
func checkGatewayAddresses(t *testing.T, where, v string) {
	t.Helper()
	if len(splitList(v)) == 0 {
		t.Errorf("%s: empty", where)
	}
	for _, e := range splitList(v) {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil {
				t.Errorf("%s: %q is neither an address nor a prefix", where, e)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if min := map[bool]int{true: 24, false: 112}[p.Addr().Is4()]; p.Bits() < min {
			t.Errorf("%s: %s is a whole network (wider than /%d): only the gateway's own addresses", where, e, min)
		}
	}
}

func checkTrustedIPs(t *testing.T, where, v string) {
	t.Helper()
	for _, cidr := range splitList(v) {
		if _, n, err := net.ParseCIDR(cidr); err != nil {
			if net.ParseIP(cidr) == nil {
				t.Errorf("%s: %q is neither a CIDR nor an address", where, cidr)
			}
		} else if ones, _ := n.Mask.Size(); ones == 0 {
			t.Errorf("%s: %s trusts every address", where, cidr)
		}
	}
}

// TestComposeRedisAndPostgresReadTheirSecretsFromFiles: Redis's password
// exists only as its hash in the ACL secret (and in the password file a
// replica and the health check read; never on a command line); PostgreSQL's
// init script reads the role passwords from mounted secrets, and k8s carries
// the same script.
func TestComposeRedisAndPostgresReadTheirSecretsFromFiles(t *testing.T) {
	svcs := composeServices(t)
	args := redisServerArgs(t)
	acl := args["--aclfile"]
	if acl != `"$secrets/redis_users.acl"` {
		t.Errorf("redis-node.sh: --aclfile %s, want \"$secrets/redis_users.acl\"", acl)
	}
	for _, n := range composeRedisNodes(t) {
		if src := secretTargets(svcs[n])["/run/secrets/redis_users.acl"]; src == "" || !strings.HasSuffix(s(path(compose(t), "secrets", src, "file")), secretgen.RedisACL) {
			t.Errorf("%s: /run/secrets/redis_users.acl (the script's --aclfile) is not the generated %s secret", n, secretgen.RedisACL)
		}
	}
	for _, bad := range []string{"--requirepass", "--masterauth"} {
		if _, ok := args[bad]; ok {
			t.Errorf("redis-node.sh: %s puts the password on the command line", bad)
		}
	}
	script := repoFile(t, "compose/postgres-init/10-edgeguard.sh")
	pg := secretTargets(svcs["postgres"])
	for _, mm := range regexp.MustCompile(`cat (/run/secrets/\S+)`).FindAllStringSubmatch(string(script), -1) {
		if _, ok := pg[strings.TrimSuffix(mm[1], "`")]; !ok {
			t.Errorf("postgres init reads %s, which compose does not mount", mm[1])
		}
	}
	fi, err := os.Stat(filepath.Join(root, "compose/postgres-init/10-edgeguard.sh"))
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("the init script must be executable (the entrypoint would source it): %v", err)
	}
}

func keysOf[V any](mp map[string]V) []string {
	out := make([]string, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

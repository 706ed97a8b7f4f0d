package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// kongBuiltins are Kong's own plugins kong.yml may use (bundled).
var kongBuiltins = []string{"cors", "request-size-limiting", "prometheus", "opentelemetry", "response-transformer"}

// TestKongConfClientIPAndHeaders: docs/architecture.md "Client IP", and
// "Kong configuration" / "Kong facts measured in the real Kong": Kong's
// headers setting adds no Server or Via of its own to answers.
func TestKongConfClientIPAndHeaders(t *testing.T) {
	c := kongConf(t)
	if c["real_ip_header"] != "X-Forwarded-For" || c["real_ip_recursive"] != "on" {
		t.Errorf("real_ip_header %q, real_ip_recursive %q; want X-Forwarded-For, on", c["real_ip_header"], c["real_ip_recursive"])
	}
	if c["trusted_ips"] == "" {
		t.Error("trusted_ips unset: every client would look like the load balancer")
	}
	checkTrustedIPs(t, "kong.conf trusted_ips", c["trusted_ips"])
	// client-ip's removal of the client's X-Forwarded-For in the rewrite
	// phase reaches the upstream only when nothing cached the request
	// headers before it: Kong's request-debug hook does, at the start of
	// rewrite (tests/e2e TestClientIPIsDecidedOnceByTheEdge measures it).
	if c["request_debug"] != "off" {
		t.Errorf("request_debug %q: want off (else the upstream gets the client's X-Forwarded-For chain)", c["request_debug"])
	}
	for _, cidr := range splitList(c["trusted_ips"]) {
		_, n, err := net.ParseCIDR(cidr)
		doc := []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}
		if err == nil && !slices.Contains(doc, n.String()) {
			t.Logf("trusted_ips %s is not a documentation range: make sure it is your load balancers'", cidr)
		}
	}
	headers := strings.ToLower(c["headers"])
	for _, leak := range []string{"server_tokens", "server", "via"} {
		if slices.Contains(splitList(headers), leak) {
			t.Errorf("headers %q sends %s", c["headers"], leak)
		}
	}
	if headers == "" {
		t.Error("headers unset: Kong's default sends Server and Via")
	}
	if c["database"] != "off" || c["declarative_config"] != "/etc/kong/kong.yml" {
		t.Errorf("database %q declarative_config %q; want off, /etc/kong/kong.yml", c["database"], c["declarative_config"])
	}
	for _, l := range splitList(c["admin_listen"]) {
		host, _, err := net.SplitHostPort(strings.Fields(l)[0])
		if l != "off" && (err != nil || !net.ParseIP(host).IsLoopback()) {
			t.Errorf("admin_listen %q is not loopback-only", l)
		}
	}
	if c["admin_gui_listen"] != "off" {
		t.Errorf("admin_gui_listen %q: Kong Manager must be off", c["admin_gui_listen"])
	}
}

// TestKongConfAccessLogDropsQueriesAndCredentials: the custom log format
// never writes the query string or a credential header.
func TestKongConfAccessLogDropsQueriesAndCredentials(t *testing.T) {
	c := kongConf(t)
	name, format, ok := strings.Cut(c["nginx_http_log_format"], " ")
	if !ok {
		t.Fatal("nginx_http_log_format: want '<name> <format>'")
	}
	fields := strings.Fields(c["proxy_access_log"])
	if len(fields) != 2 || fields[1] != name {
		t.Errorf("proxy_access_log %q does not use the %s format", c["proxy_access_log"], name)
	}
	for _, v := range []string{`$request `, `$request"`, "$request_uri", "$args", "$query_string", "$is_args", "$arg_",
		"$http_authorization", "$http_x_api_key", "$http_cookie", "$http_x_edge_identity", "$request_body"} {
		if strings.Contains(format+" ", v) {
			t.Errorf("the access log format writes %s", strings.TrimSpace(v))
		}
	}
	if !strings.Contains(format, "$uri") {
		t.Error("the access log format should log the path ($uri)")
	}
}

// TestKongConfPluginServers: every plugin server has the three settings
// Kong derives from its name (with - → _), the socket where go-pdk listens
// (<prefix>/<name>.socket), full paths, -kong-prefix and -dump; every plugin
// kong.yml uses is bundled or one of them; kong/Dockerfile builds each one.
func TestKongConfPluginServers(t *testing.T) {
	c := kongConf(t)
	prefix := strings.TrimSuffix(c["prefix"], "/")
	if prefix == "" || prefix == "/usr/local/kong" {
		t.Fatalf("prefix %q: want a writable path outside /usr/local/kong (which holds include/)", c["prefix"])
	}
	servers := splitList(c["pluginserver_names"])
	if len(servers) == 0 {
		t.Fatal("no pluginserver_names")
	}
	plugins := splitList(c["plugins"])
	if !slices.Contains(plugins, "bundled") {
		t.Errorf("plugins %v: keep bundled (cors, request-size-limiting)", plugins)
	}
	dockerfile := string(repoFile(t, "kong/Dockerfile"))
	metricsPorts := map[string]string{}
	for _, name := range servers {
		key := "pluginserver_" + strings.ReplaceAll(name, "-", "_")
		want := map[string]string{
			key + "_socket":    prefix + "/" + name + ".socket",
			key + "_query_cmd": "/usr/local/bin/" + name + " -dump",
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("%s = %q, want %q", k, c[k], v)
			}
		}
		start := strings.Fields(c[key+"_start_cmd"])
		if len(start) < 3 || start[0] != "/usr/local/bin/"+name || start[1] != "-kong-prefix" || start[2] != prefix {
			t.Errorf("%s_start_cmd = %q, want /usr/local/bin/%s -kong-prefix %s [flags]", key, c[key+"_start_cmd"], name, prefix)
		}
		// A metrics listener is on loopback or on the pod's address; in the
		// latter case only Prometheus may reach its port
		// (TestK8sMetricsPortsAreOpenOnlyToPrometheus; compose publishes
		// nothing but the proxy).
		if i := slices.Index(start, "-metrics-listen"); i >= 0 {
			host, port, err := net.SplitHostPort(start[min(i+1, len(start)-1)])
			if ip := net.ParseIP(host); err != nil || ip == nil || !(ip.IsLoopback() || ip.IsUnspecified()) {
				t.Errorf("%s_start_cmd: -metrics-listen %q must be a loopback or the unspecified address", key, start[min(i+1, len(start)-1)])
			}
			if metricsPorts[port] != "" {
				t.Errorf("%s and %s both serve metrics on port %s", metricsPorts[port], name, port)
			}
			metricsPorts[port] = name
		}
		if !slices.Contains(plugins, name) {
			t.Errorf("plugins %v does not load %s", plugins, name)
		}
		if _, err := os.Stat(filepath.Join(root, "plugins", name, "main.go")); err != nil {
			t.Errorf("pluginserver %s: plugins/%s/main.go: %v", name, name, err)
		}
		if !regexp.MustCompile(`for p in [^;]*\b` + regexp.QuoteMeta(name) + `\b`).MatchString(dockerfile) {
			t.Errorf("kong/Dockerfile does not build %s", name)
		}
	}
	for k := range c {
		if strings.HasPrefix(k, "pluginserver_") && k != "pluginserver_names" {
			known := false
			for _, name := range servers {
				known = known || strings.HasPrefix(k, "pluginserver_"+strings.ReplaceAll(name, "-", "_")+"_")
			}
			if !known {
				t.Errorf("%s belongs to no server of pluginserver_names", k)
			}
		}
	}
	for name := range kongYMLPluginNames(t) {
		if slices.Contains(kongBuiltins, name) {
			continue
		}
		if !slices.Contains(servers, name) {
			t.Errorf("kong.yml uses plugin %s, which kong.conf does not run", name)
		}
	}
	if !strings.Contains(dockerfile, "ENV KONG_PREFIX="+prefix) {
		t.Errorf("kong/Dockerfile must set KONG_PREFIX=%s (the entrypoint prepares that prefix)", prefix)
	}
}

// TestDockerfilesPinTheirImages: every FROM (and ARG default image) names an
// explicit version; the Go toolchain is the repository's.
func TestDockerfilesPinTheirImages(t *testing.T) {
	goVersion := ""
	for _, line := range strings.Split(string(repoFile(t, "go.work")), "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			goVersion = strings.TrimSpace(v)
		}
	}
	for _, df := range []string{"kong/Dockerfile", "docker/Dockerfile.service", "docker/Dockerfile.keycloak"} {
		text := string(repoFile(t, df))
		args := map[string]string{}
		for _, mm := range regexp.MustCompile(`(?m)^ARG (\w+_IMAGE)=(\S+)$`).FindAllStringSubmatch(text, -1) {
			args[mm[1]] = mm[2]
			checkImage(t, df+" ARG "+mm[1], mm[2])
		}
		for _, mm := range regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(text, -1) {
			img := mm[1]
			if name, ok := strings.CutPrefix(img, "${"); ok {
				img = args[strings.TrimSuffix(name, "}")]
			}
			if img == "scratch" {
				continue
			}
			checkImage(t, df+" FROM", img)
		}
		if g, ok := args["GO_IMAGE"]; ok && g != "golang:"+goVersion+"-bookworm" {
			t.Errorf("%s: GO_IMAGE %s, want golang:%s-bookworm (go.work)", df, g, goVersion)
		}
		if !regexp.MustCompile(`(?m)^USER [1-9][0-9]*(:[0-9]+)?\s*$|^USER \$\{\w+\}:\$\{\w+\}\s*$`).MatchString(text) {
			t.Errorf("%s: the final stage must switch to a numeric non-root USER", df)
		}
		if _, err := os.Stat(filepath.Join(root, df+".dockerignore")); err != nil {
			t.Errorf("%s: no %s.dockerignore (the context would include compose/.secrets)", df, df)
		}
	}
	if k := regexp.MustCompile(`(?m)^ARG KONG_IMAGE=kong:(\d+)\.\d+\.\d+$`).FindStringSubmatch(string(repoFile(t, "kong/Dockerfile"))); k == nil || k[1] != "3" {
		t.Error("kong/Dockerfile: KONG_IMAGE must be an explicit kong:3.x.y")
	}
}

// TestKongConfShowsPluginServerErrors: Kong copies a plugin server's stderr
// into its error log at [info] (measured in Kong 3.9.3), so a log_level
// above info hides every configuration error the plugins report there.
func TestKongConfShowsPluginServerErrors(t *testing.T) {
	c := kongConf(t)
	switch c["log_level"] {
	case "info", "debug":
	default:
		t.Errorf("kong.conf log_level = %q: the plugin servers' errors (logged by Kong at [info]) would be invisible; want info", c["log_level"])
	}
}

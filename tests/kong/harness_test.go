package kong

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// pluginNames are edgeguard's plugin servers, as kong/kong.conf and
// scripts/kong.sh name them.
var pluginNames = []string{"header-guard", "keycloak-jwt", "keycloak-apikey", "redis-ratelimit", "edgeguard"}

// globalPlugins are the plugin servers without a configuration (client-ip:
// an empty config record, global, rewrite phase): Kong starts them too, so
// the capture directory holds them, but there is nothing to capture.
var globalPlugins = []string{"client-ip"}

// repoRoot is the repository (this module is tests/kong).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// skipOrFail skips the test locally and fails it under CI=true, where a
// missing dependency must never pass as a skip.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if testenv.CI() {
		t.Fatalf("under CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

var kongInstall struct {
	once sync.Once
	err  error
	out  string
}

// requireKong makes sure a Kong 3.9 is installed (scripts/kong.sh install:
// KONG_BIN, kong on PATH, or the cached build of the source bundle; the
// first build takes ~2 minutes). Locally a missing Kong skips the test.
func requireKong(t testing.TB) {
	t.Helper()
	kongInstall.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", "kong.sh"), "install")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		kongInstall.out = string(out)
		if err != nil {
			kongInstall.err = fmt.Errorf("scripts/kong.sh install: %v: %s", err, lastLines(stderr.String(), 10))
		}
	})
	if kongInstall.err != nil {
		skipOrFail(t, "no Kong 3.9 (%v)", kongInstall.err)
	}
}

// realBin is the directory of the real plugin servers (make build →
// bin/, EDGEGUARD_BIN under make test).
func realBin(t testing.TB) string {
	t.Helper()
	var dir string
	for _, p := range pluginNames {
		dir = filepath.Dir(testenv.Binary(t, p))
	}
	return dir
}

var capture struct {
	once sync.Once
	dir  string
	err  error
}

// captureBin builds cmd/kongcapture once and returns a directory (readable
// by Kong's user) holding a copy of it under each plugin's name: go-pdk
// takes the plugin's name from os.Executable, which resolves symlinks, so
// they are copies.
func captureBin(t testing.TB) string {
	t.Helper()
	capture.once.Do(func() {
		dir, err := os.MkdirTemp("", "edgeguard-kongcapture-")
		if err != nil {
			capture.err = err
			return
		}
		shared.add(func() { _ = os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			capture.err = err
			return
		}
		bin := filepath.Join(dir, "kongcapture")
		out, err := exec.Command("go", "build", "-o", bin, "./cmd/kongcapture").CombinedOutput()
		if err != nil {
			capture.err = fmt.Errorf("go build ./cmd/kongcapture: %v\n%s", err, out)
			return
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			capture.err = err
			return
		}
		for _, p := range append(slices.Clone(pluginNames), globalPlugins...) {
			if err := os.WriteFile(filepath.Join(dir, p), b, 0o755); err != nil {
				capture.err = err
				return
			}
		}
		capture.dir = dir
	})
	if capture.err != nil {
		t.Fatal(capture.err)
	}
	return capture.dir
}

// shared holds what the package's tests share and TestMain stops.
var shared cleanups

type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *cleanups) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

var localRedis struct {
	once sync.Once
	addr string
	err  error
}

// redisAddr is the test run's Redis: EDGEGUARD_TEST_REDIS_ADDR (make test),
// else locally a private one started with scripts/redis.sh (stopped by
// TestMain). Under CI=true the variable must be set.
func redisAddr(t testing.TB) string {
	t.Helper()
	if a := os.Getenv(testenv.VarRedisAddr); a != "" {
		return a
	}
	if testenv.CI() {
		t.Fatalf("%s is unset under CI=true (scripts/test.sh must start Redis)", testenv.VarRedisAddr)
	}
	localRedis.once.Do(func() {
		dir, err := os.MkdirTemp("", "edgeguard-kongtest-redis-")
		if err != nil {
			localRedis.err = err
			return
		}
		script := filepath.Join(repoRoot(t), "scripts", "redis.sh")
		cmd := exec.Command(script, "start")
		cmd.Env = append(os.Environ(), "EDGEGUARD_TMP="+dir)
		out, err := cmd.Output()
		if err != nil {
			localRedis.err = fmt.Errorf("scripts/redis.sh start: %v", err)
			_ = os.RemoveAll(dir)
			return
		}
		shared.add(func() {
			stop := exec.Command(script, "stop")
			stop.Env = append(os.Environ(), "EDGEGUARD_TMP="+dir)
			_ = stop.Run()
			_ = os.RemoveAll(dir)
		})
		for line := range strings.SplitSeq(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "REDIS_ADDR="); ok {
				localRedis.addr = strings.TrimSpace(v)
			}
		}
		if localRedis.addr == "" {
			localRedis.err = fmt.Errorf("scripts/redis.sh start printed no REDIS_ADDR: %q", out)
		}
	})
	if localRedis.err != nil {
		t.Skipf("no Redis: %v", localRedis.err)
	}
	return localRedis.addr
}

// varKongLogs is where scripts/test.sh wants Kong's logs of these tests:
// they join the run's secret sweep.
const varKongLogs = "EDGEGUARD_TEST_KONG_LOGS_DIR"

// kongOptions is one Kong to start (scripts/kong.sh start's options).
type kongOptions struct {
	config   any      // kong.yml content: marshalled to YAML
	yml      string   // or a kong.yml file (the repo's)
	bin      string   // plugin servers (start_cmd); default the real ones
	queryBin string   // schemas (query_cmd `-dump`); default bin
	secrets  string   // --secrets DIR
	rewrites []string // --rewrite OLD=NEW
	// servicesCA is --services-ca: the CA replacing kong.yml's placeholder
	// services CA (the repo's kong.yml).
	servicesCA string
	env        []string // extra environment (KONG_* overrides, EDGEGUARD_*_FILE)
}

// kongInstance is a running Kong.
type kongInstance struct {
	dir                          string
	proxy, admin, status, prefix string
	errorLog                     string
	metrics                      map[string]string // plugin → base URL of its /metrics
}

// startKong starts Kong with scripts/kong.sh and stops it when the test
// ends (its directory is kept after a failure, for the logs).
func startKong(t testing.TB, o kongOptions) *kongInstance {
	t.Helper()
	if o.bin == "" {
		o.bin = realBin(t)
	}
	requireKong(t)
	dir, err := os.MkdirTemp("", "edgeguard-kong-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	yml := o.yml
	if yml == "" {
		b, err := yaml.Marshal(o.config)
		if err != nil {
			t.Fatal(err)
		}
		yml = filepath.Join(dir, "source.kong.yml")
		if err := os.WriteFile(yml, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(repoRoot(t), "scripts", "kong.sh")
	args := []string{"start", "--dir", filepath.Join(dir, "kong"), "--config", yml, "--bin", o.bin}
	if o.queryBin != "" {
		args = append(args, "--query-bin", o.queryBin)
	}
	if o.secrets != "" {
		args = append(args, "--secrets", o.secrets)
	}
	for _, r := range o.rewrites {
		args = append(args, "--rewrite", r)
	}
	if o.servicesCA != "" {
		args = append(args, "--services-ca", o.servicesCA)
	}
	if logs := os.Getenv(varKongLogs); logs != "" {
		// kept for the run's secret sweep (scripts/test.sh)
		args = append(args, "--logs", filepath.Join(logs, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())))
	}
	k := &kongInstance{dir: filepath.Join(dir, "kong"), metrics: map[string]string{}}
	stop := func() {
		cmd := exec.Command(script, "stop", "--dir", k.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("scripts/kong.sh stop: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			if k.errorLog != "" {
				if b, err := os.ReadFile(k.errorLog); err == nil {
					t.Logf("tail of Kong's error log %s:\n%s", k.errorLog, lastLines(string(b), 40))
				}
			}
			t.Logf("Kong's directory is kept: %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), o.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/kong.sh %s: %v\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 40))
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	k.proxy, k.admin, k.status = env["KONG_PROXY_URL"], env["KONG_ADMIN_URL"], env["KONG_STATUS_URL"]
	k.prefix, k.errorLog = env["KONG_PREFIX"], env["KONG_ERROR_LOG"]
	for _, p := range pluginNames {
		k.metrics[p] = env["KONG_METRICS_"+strings.ToUpper(strings.ReplaceAll(p, "-", "_"))]
	}
	if k.proxy == "" || k.admin == "" || k.status == "" || k.prefix == "" {
		t.Fatalf("scripts/kong.sh start printed no URLs: %q", out)
	}
	return k
}

// client is the tests' HTTP client: keep-alive, generous timeouts (a loaded
// 2-core machine).
var client = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	},
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// code is the edgeguard error code of a JSON error body ({"error":{"code"}}).
func (r response) code() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

// do sends one request and reads the whole answer.
func do(method, url string, header http.Header) (response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		if k == "Host" { // Go sends req.Host, never a Host header field
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// mustDo is do that fails the test on a transport error.
func mustDo(t testing.TB, method, url string, header http.Header) response {
	t.Helper()
	r, err := do(method, url, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// postConfig replaces Kong's DB-less configuration (Admin API POST /config).
func (k *kongInstance) postConfig(t testing.TB, config any) {
	t.Helper()
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Post(k.admin+"/config", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST /config: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /config: %d %s", res.StatusCode, body)
	}
}

// keyPath is where Kong's plugin servers find a --secrets file once Kong
// runs (scripts/kong.sh copies them into its directory).
func (k *kongInstance) keyPath(name string) string { return filepath.Join(k.dir, "secrets", name) }

// pluginServerPID finds the process of a plugin server Kong started for
// this prefix (its command line is "<bin>/<name> -kong-prefix <prefix> …").
func (k *kongInstance) pluginServerPID(t testing.TB, name string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := name + " -kong-prefix " + k.prefix + " "
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, "/"+want) {
			return pid
		}
	}
	return 0
}

// scrape reads a plugin server's /metrics.
func (k *kongInstance) scrape(t testing.TB, plugin string) map[string]float64 {
	t.Helper()
	if k.metrics[plugin] == "" {
		t.Fatalf("no metrics URL for %s", plugin)
	}
	return testenv.Scrape(t, k.metrics[plugin]+"/metrics")
}

// dumpSchema runs `<bin> -dump` and returns the plugin's config record (the
// schema Kong builds its validation from).
func dumpSchema(t testing.TB, bin string) map[string]any {
	t.Helper()
	out, err := exec.Command(bin, "-dump").Output()
	if err != nil {
		t.Fatalf("%s -dump: %v", bin, err)
	}
	var info struct {
		Plugins []struct {
			Name   string
			Schema struct {
				Fields []map[string]map[string]any `json:"fields"`
			}
		}
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%s -dump: %v", bin, err)
	}
	if len(info.Plugins) != 1 || len(info.Plugins[0].Schema.Fields) != 1 || info.Plugins[0].Schema.Fields[0]["config"] == nil {
		t.Fatalf("%s -dump: want one plugin with a config record: %s", bin, out)
	}
	return info.Plugins[0].Schema.Fields[0]["config"]
}

// upstream is the test's upstream service: it records the headers of every
// request by its X-Test-ID and answers 200 with the response headers
// upstreams usually add (Server, X-Powered-By).
type upstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]http.Header
	n   int
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{got: map[string]http.Header{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.n++
		if id := r.Header.Get("X-Test-ID"); id != "" {
			u.got[id] = r.Header.Clone()
		}
		u.mu.Unlock()
		w.Header().Set("Server", "test-upstream/1.0")
		w.Header().Set("X-Powered-By", "test-framework/2.0")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"upstream":true}`)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// URL is the upstream's base URL (http://127.0.0.1:port).
func (u *upstream) URL() string { return u.srv.URL }

// seen returns the headers the upstream got for a request id.
func (u *upstream) seen(id string) (http.Header, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	h, ok := u.got[id]
	return h, ok
}

// secretsDir writes the secret files kong.yml's /etc/kong/secrets/<name>
// paths name (scripts/kong.sh --secrets copies them for Kong's user):
// an Ed25519 edge identity key, the internal token, the DPoP nonce key, Redis and Sentinel
// passwords, and a CA bundle for Redis TLS. The values are registered for
// the run's secret sweep. It returns the directory and the edge identity's
// public JWKS file.
func secretsDir(t testing.TB, redisPassword string) (dir, jwks string) {
	t.Helper()
	dir = t.TempDir()
	jwks = filepath.Join(t.TempDir(), "edge_identity.jwks.json")
	if err := edgeid.WriteKeyFiles(filepath.Join(dir, "edge_identity.pem"), jwks); err != nil {
		t.Fatal(err)
	}
	if redisPassword == "" {
		redisPassword = randomSecret(t)
	}
	files := map[string]string{
		"internal_token":    randomSecret(t) + randomSecret(t),
		"dpop_nonce_key":    randomSecret(t) + randomSecret(t),
		"redis_password":    redisPassword,
		"sentinel_password": randomSecret(t),
		"redis_ca.pem":      string(testenv.SelfSignedCA(t)),
	}
	for name, v := range files {
		if name != "redis_ca.pem" {
			testenv.RecordSecret(v)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	recordPEMSecret(t, filepath.Join(dir, "edge_identity.pem"))
	return dir, jwks
}

// randomSecret is 32 random hex characters.
func randomSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// recordPEMSecret registers the body lines of a PEM private key for the
// sweep.
func recordPEMSecret(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			testenv.RecordSecret(line)
		}
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// service is a kong.yml service with its routes.
func service(name, url string, routes ...map[string]any) map[string]any {
	return map[string]any{"name": name, "url": url, "routes": routes}
}

// route is a kong.yml route on one path with plugins (name, config pairs
// in order).
func route(name, path string, plugins ...map[string]any) map[string]any {
	r := map[string]any{"name": name, "paths": []string{path}, "strip_path": false}
	if len(plugins) > 0 {
		r["plugins"] = plugins
	}
	return r
}

// plugin is a kong.yml plugin entry.
func plugin(name string, config map[string]any) map[string]any {
	if config == nil {
		config = map[string]any{}
	}
	return map[string]any{"name": name, "config": config}
}

// declarative is a whole DB-less configuration.
func declarative(services ...map[string]any) map[string]any {
	return map[string]any{"_format_version": "3.0", "services": services}
}

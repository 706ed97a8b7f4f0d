// Command loadrig is the rig of `make load` and `make soak` (bench/README.md):
//
//	loadrig serve -dir D -stub URL -redis HOST:PORT   the JWKS + validate endpoint, writes D/kong.yml and the credentials
//	loadrig soak  -dir D -gateway URL -pid PID …       the fixed-rate soak through the gateway's /chain route
//	loadrig latency -url URL [-H "Name: value"] -rate N the latency at a fixed rate, printed as wrk --latency does
//	loadrig table -dir D/results [-fixed-rate] [-kong]  the rounds as a Markdown table of ratios to the baseline
//	loadrig cpu -target T -out F -proc ROLE=PID… -- wrk …  where one run's CPU goes, per process (cpuacct)
//	loadrig cpu-table -dir D                           those runs as µs per request and the protocol model
//
// For loopback load runs only.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgeguard/edgeguard/bench/internal/cpuacct"
	"github.com/edgeguard/edgeguard/bench/internal/fixedrate"
	"github.com/edgeguard/edgeguard/bench/internal/rig"
	"github.com/edgeguard/edgeguard/bench/internal/soak"
	"github.com/edgeguard/edgeguard/bench/internal/wrkout"
	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "soak":
		err = runSoak(os.Args[2:])
	case "latency":
		err = latency(os.Args[2:], os.Stdout)
	case "table":
		err = table(os.Args[2:], os.Stdout)
	case "cpu":
		err = cpu(os.Args[2:])
	case "cpu-table":
		err = cpuTable(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadrig:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadrig serve|soak|latency|table|cpu|cpu-table [flags] (-h for each)")
	os.Exit(2)
}

// info is D/rig.json: what the soak and the script need besides secrets.
type info struct {
	URL     string `json:"url"`
	Issuer  string `json:"issuer"`
	KID     string `json:"kid"`
	JWKSURL string `json:"jwks_url"`
}

func writeFile(dir, name string, b []byte, mode os.FileMode) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "output folder (kong.yml, secrets, tokens, rig.json); created")
	listen := fs.String("listen", "127.0.0.1:0", "listen address (loopback)")
	stub := fs.String("stub", "", "the stub upstream's base URL, e.g. http://127.0.0.1:18000 (writes kong.yml for the dev gateway)")
	kongUpstream := fs.String("kong-upstream", "", "the real-Kong run's upstream base URL (writes kong-bench.yml and kong-targets.txt)")
	redisAddr := fs.String("redis", "", "host:port of the Redis the chain uses")
	nkeys := fs.Int("keys", 4, "valid API keys to generate")
	ttl := fs.Duration("token-ttl", 24*time.Hour, "lifetime of the minted JWT")
	_ = fs.Parse(args)
	if *dir == "" || (*stub == "" && *kongUpstream == "") || *redisAddr == "" || *nkeys < 1 {
		return errors.New("serve: -dir, -stub or -kong-upstream, -redis and -keys ≥ 1 are required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	var tok [32]byte
	_, _ = rand.Read(tok[:])
	token := []byte(hex.EncodeToString(tok[:]))
	keys := make([]apikey.Key, *nkeys)
	var keyLines strings.Builder
	for i := range keys {
		k, err := apikey.Generate(apikey.EnvLive)
		if err != nil {
			return err
		}
		keys[i] = k
		keyLines.WriteString(k.Secret() + "\n")
	}
	r, err := rig.New(token, keys)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	r.Issuer = base + "/realms/bench"
	jwt, err := r.Mint("bench-user", time.Now(), *ttl)
	if err != nil {
		return err
	}
	keyFile, jwksFile := filepath.Join(*dir, "edge_identity.pem"), filepath.Join(*dir, "edge_identity.jwks.json")
	_ = os.Remove(keyFile)
	_ = os.Remove(jwksFile)
	if err := edgeid.WriteKeyFiles(keyFile, jwksFile); err != nil {
		return err
	}
	type file struct {
		name string
		b    []byte
	}
	files := []file{{"internal_token", append(token, '\n')}, {"jwt", []byte(jwt + "\n")}, {"apikeys", []byte(keyLines.String())}}
	if *stub != "" {
		kong, err := rig.KongYML(rig.KongConfig{
			StubURL: strings.TrimSuffix(*stub, "/"), Issuer: r.Issuer, JWKSURL: base + rig.JWKSPath,
			ValidateURL: base + rig.ValidatePath, InternalTokenFile: filepath.Join(*dir, "internal_token"),
			EdgeKeyFile: keyFile, RedisAddr: *redisAddr,
		})
		if err != nil {
			return err
		}
		files = append(files, file{"kong.yml", kong})
	}
	if *kongUpstream != "" {
		// Kong runs as another user: the secrets are named by their
		// scripts/kong.sh path, which copies them from -dir (--secrets).
		kong, err := rig.KongBenchYML(rig.KongBenchConfig{
			UpstreamURL: strings.TrimSuffix(*kongUpstream, "/"), Issuer: r.Issuer, JWKSURL: base + rig.JWKSPath,
			ValidateURL: base + rig.ValidatePath, RedisAddr: *redisAddr, JWTPublicKeyPEM: r.PublicKeyPEM(),
			InternalTokenFile: "/etc/kong/secrets/internal_token", EdgeKeyFile: "/etc/kong/secrets/edge_identity.pem",
		})
		if err != nil {
			return err
		}
		var t strings.Builder
		for _, tg := range rig.KongTargets {
			fmt.Fprintf(&t, "%s %s %s\n", tg.Name, tg.Path, tg.Credential)
		}
		files = append(files, file{"kong-bench.yml", kong}, file{"kong-targets.txt", []byte(t.String())})
	}
	inf, _ := json.Marshal(info{URL: base, Issuer: r.Issuer, KID: r.KID, JWKSURL: base + rig.JWKSPath})
	files = append(files, file{"rig.json", inf}) // rig.json last: its presence means ready
	for _, f := range files {
		if err := writeFile(*dir, f.name, f.b, 0o600); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Println("RIG_URL=" + base)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s := r.Stats()
	fmt.Fprintf(os.Stderr, "loadrig: served %d JWKS fetches, %d validate calls\n", s.JWKSFetches, s.ValidateCalls)
	return nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func runSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	dir := fs.String("dir", "", "the folder `loadrig serve` wrote")
	gateway := fs.String("gateway", "", "the dev gateway's base URL, e.g. http://127.0.0.1:8000")
	pid := fs.Int("pid", 0, "the dev gateway's pid (RSS from /proc/<pid>/status)")
	rate := fs.Int("rate", 200, "requests per second (fixed)")
	duration := fs.Duration("duration", 10*time.Minute, "measured phase")
	warmup := fs.Duration("warmup", 15*time.Second, "traffic before the measured phase")
	sample := fs.Duration("sample", 5*time.Second, "RSS sampling period")
	out := fs.String("out", "", "also write the report (Markdown) here")
	_ = fs.Parse(args)
	if *dir == "" || *gateway == "" || *pid <= 0 {
		return errors.New("soak: -dir, -gateway and -pid are required")
	}
	var inf info
	b, err := os.ReadFile(filepath.Join(*dir, "rig.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &inf); err != nil {
		return fmt.Errorf("rig.json: %w", err)
	}
	jwt, err := readLines(filepath.Join(*dir, "jwt"))
	if err != nil || len(jwt) != 1 {
		return fmt.Errorf("jwt file: %v", err)
	}
	keys, err := readLines(filepath.Join(*dir, "apikeys"))
	if err != nil {
		return err
	}
	creds, err := soak.NewCredentials(inf.Issuer, inf.KID, jwt[0], keys)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "soak: %d req/s for %s after %s of warm-up through %s%s\n", *rate, *duration, *warmup, *gateway, rig.ChainPath)
	res, err := soak.Run(ctx, soak.Config{
		URL: strings.TrimSuffix(*gateway, "/") + rig.ChainPath, RigURL: inf.URL, Creds: creds, Rate: *rate,
		Duration: *duration, Warmup: *warmup, SampleEvery: *sample, PID: *pid, Progress: os.Stderr,
	})
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	res.Write(w)
	if !res.OK() {
		return errors.New("soak: a check failed (see the table)")
	}
	return nil
}

// headerFlag collects repeatable -H "Name: value".
type headerFlag http.Header

func (h headerFlag) String() string { return "" }
func (h headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want \"Name: value\"", s)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

func latency(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	h := headerFlag{}
	url := fs.String("url", "", "target URL (GET)")
	fs.Var(h, "H", "request header \"Name: value\" (repeatable)")
	rate := fs.Int("rate", 500, "requests per second (fixed)")
	duration := fs.Duration("duration", 10*time.Second, "how long")
	_ = fs.Parse(args)
	cfg := fixedrate.Config{URL: *url, Header: http.Header(h), Rate: *rate, Duration: *duration}
	res, err := fixedrate.Run(context.Background(), cfg)
	if err != nil {
		return err
	}
	res.WriteWrkFormat(w, cfg)
	return nil
}

func table(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	dir := fs.String("dir", "", "folder of round<N>-<target>.txt wrk reports")
	fixed := fs.Bool("fixed-rate", false, "the reports are fixed-rate latency runs: judge latency only")
	// -kong is the only table there is since the dev gateway's was removed
	// (issue 12); the flag stays accepted for scripts/load-kong.sh.
	_ = fs.Bool("kong", true, "the rounds of scripts/load.sh kong (targets of rig.KongTargets, baseline kong-plain)")
	goalRate := fs.Bool("goal-rate", true, "with -fixed-rate: the rounds ran at the goal's rate (judge the p50 goal)")
	_ = fs.Parse(args)
	rounds, err := wrkout.ReadDir(*dir)
	if err != nil {
		return err
	}
	return kongTable(w, rounds, *fixed, *goalRate)
}

// Goals of the issue "Performance in Kong" for the all-in-one plugin.
const (
	minVsLua     = 4.0                  // × Kong's Lua jwt + rate-limiting (redis)
	minVsEmpty   = 0.7                  // × the empty Go plugin
	maxP50Growth = 1 * time.Millisecond // over Kong without plugins, at a fixed rate
)

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func kongLabels() (names []string, labels map[string]string) {
	labels = map[string]string{}
	for _, t := range rig.KongTargets {
		names = append(names, t.Name)
		labels[t.Name] = t.Label
	}
	return names, labels
}

// kongTable prints the real-Kong rounds: every measured target against
// Kong without plugins, the goals' ratios (median of per-round ratios),
// and a warning for every row with non-2xx answers.
func kongTable(w io.Writer, rounds wrkout.Rounds, fixed, goalRate bool) error {
	all, labels := kongLabels()
	seen := map[string]bool{}
	for _, r := range rounds {
		for t := range r {
			seen[t] = true
		}
	}
	var names []string
	for _, t := range all {
		if seen[t] {
			names = append(names, t)
		}
	}
	rows, err := wrkout.Table(rounds, rig.KongBaseline, names)
	if err != nil {
		return err
	}
	wrkout.WriteMarkdownP50(w, rows, rig.KongBaseline, labels)
	fmt.Fprintln(w)
	for _, r := range rows {
		switch {
		case r.Non2xx > 0:
			fmt.Fprintf(w, "- WARNING: %s: %d non-2xx answers and %d socket errors: this row measured refusals or failures, not the plugins\n",
				labels[r.Target], r.Non2xx, r.SocketErrors)
		case r.SocketErrors > 0 && fixed:
			fmt.Fprintf(w, "- WARNING: %s: %d requests skipped or failed (1024 in flight, or an error): the target did not carry this rate; its latency is its queue's\n",
				labels[r.Target], r.SocketErrors)
		case r.SocketErrors > 0:
			fmt.Fprintf(w, "- WARNING: %s: %d socket errors: this row measured failures, not the plugins\n", labels[r.Target], r.SocketErrors)
		}
	}
	for _, eg := range []string{"eg-jwt", "eg-key"} {
		if !seen[eg] {
			continue
		}
		if fixed {
			for _, r := range rows {
				if r.Target == eg && !goalRate {
					fmt.Fprintf(w, "- %s: p50 %s over Kong without plugins at this rate (median of per-round differences)\n", labels[eg], signedMS(r.P50Delta))
				} else if r.Target == eg {
					fmt.Fprintf(w, "- %s: p50 %s over Kong without plugins at the same fixed rate (median of per-round differences; goal ≤ +%.0f ms: %s)\n",
						labels[eg], signedMS(r.P50Delta), float64(maxP50Growth)/1e6, verdict(r.P50Delta <= maxP50Growth))
				}
			}
			continue
		}
		if v, n := wrkout.PairRatio(rounds, eg, "lua-jwt-rl"); n > 0 {
			fmt.Fprintf(w, "- %s: **%.2f×** Kong's Lua jwt + rate-limiting (redis) (median of %d per-round ratios; goal ≥ %.1f×: %s)\n",
				labels[eg], v, n, minVsLua, verdict(v >= minVsLua))
		}
		if v, n := wrkout.PairRatio(rounds, eg, "empty"); n > 0 {
			fmt.Fprintf(w, "- %s: **%.2f×** the empty Go plugin (median of %d per-round ratios; goal ≥ %.1f×: %s)\n",
				labels[eg], v, n, minVsEmpty, verdict(v >= minVsEmpty))
		}
	}
	if !fixed {
		if v, n := wrkout.PairRatio(rounds, "eg-replay", "empty"); n > 0 {
			fmt.Fprintf(w, "- the protocol's bound for the ≥ %.1f× goal: edgeguard's own six PDK calls replayed with no work reach **%.2f×** the empty plugin (median of %d per-round ratios)\n",
				minVsEmpty, v, n)
		}
		for _, p := range [][2]string{{"empty", rig.KongBaseline}, {"empty-fast", "empty"}, {"pdk8-fast", "pdk8"}, {"eg-jwt", "eg-replay"},
			{"sep-jwt", "lua-jwt-rl"}, {"eg-jwt", "sep-jwt"}, {"eg-key", "sep-key"}} {
			if v, n := wrkout.PairRatio(rounds, p[0], p[1]); n > 0 {
				fmt.Fprintf(w, "- %s / %s: %.2f× (median of %d per-round ratios)\n", p[0], p[1], v, n)
			}
		}
	}
	return nil
}

func signedMS(d time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("−%.2f ms", float64(-d)/1e6)
	}
	return fmt.Sprintf("+%.2f ms", float64(d)/1e6)
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// cpu runs a load command (wrk) and accounts the CPU of the watched
// processes, the machine, Redis and the plugin servers' PDK calls around
// it (package cpuacct); the report goes to -out as JSON.
func cpu(args []string) error {
	fs := flag.NewFlagSet("cpu", flag.ExitOnError)
	target := fs.String("target", "", "the target's name (rig.KongTargets)")
	out := fs.String("out", "", "the JSON report")
	cmdOut := fs.String("cmd-out", "", "where the command's output goes (a wrk --latency report)")
	redisAddr := fs.String("redis", "", "host:port of the Redis to read INFO from")
	var procs, metrics listFlag
	fs.Var(&procs, "proc", "ROLE=PID: kong, redis, upstream or plugin:<name> (repeatable)")
	fs.Var(&metrics, "metrics", "a plugin server's /metrics URL (repeatable)")
	_ = fs.Parse(args)
	cmdline := fs.Args()
	if *target == "" || *out == "" || *cmdOut == "" || len(cmdline) == 0 {
		return errors.New("cpu: -target, -out, -cmd-out and a command after the flags are required")
	}
	watch := cpuacct.Watch{Procs: map[string]int{}, Redis: *redisAddr, Metrics: metrics}
	for _, p := range procs {
		role, pid, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 {
			return fmt.Errorf("cpu: -proc %q: want ROLE=PID", p)
		}
		watch.Procs[role] = n
	}
	f, err := os.Create(*cmdOut)
	if err != nil {
		return err
	}
	defer f.Close()
	before, err := watch.Take()
	if err != nil {
		return err
	}
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stdout, cmd.Stderr = f, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpu: %s: %w", cmdline[0], err)
	}
	after, err := watch.Take()
	if err != nil {
		return err
	}
	rep := cpuacct.Diff(*target, before, after)
	rep.CPU[cpuacct.RoleClient] = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	run, err := wrkout.Parse(f)
	if err != nil {
		return err
	}
	rep.Requests, rep.Non2xx, rep.SocketErrors = run.Requests, run.Non2xx, run.SocketErrors
	if t, ok := rig.KongTarget(*target); ok {
		rep.KnownEvents, rep.KnownCalls = t.Events, t.Calls
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

func cpuTable(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("cpu-table", flag.ExitOnError)
	dir := fs.String("dir", "", "folder of `loadrig cpu` reports")
	_ = fs.Parse(args)
	reports, err := cpuacct.ReadDir(*dir)
	if err != nil {
		return err
	}
	pers := cpuacct.Medians(reports)
	names, labels := kongLabels()
	cpuacct.WriteTable(w, pers, names, labels, cpuacct.NewModel(pers, rig.KongBaseline, "empty", "pdk8"))
	if m := cpuacct.NewModel(pers, rig.KongBaseline, "empty-fast", "pdk8-fast"); m.OK {
		fmt.Fprintf(w, "\n%s\n", m.Sentence("one write per exchange (bench/internal/pbserve)"))
	}
	// the all-in-one plugin against the replay of its own PDK calls: what
	// is left is its work (JWT cache, policy, Ed25519 assertion, Redis)
	if p, ok := pers["eg-replay"]; ok {
		for _, t := range []string{"eg-jwt", "eg-key"} {
			q, ok := pers[t]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "\n%s against the replay of its PDK calls (%.1f calls/req vs %.1f): Kong worker %+.1f µs/req, plugin server %+.1f µs/req (its own work: JWT cache, policy, Ed25519 assertion, the Redis client), Redis %+.1f µs/req.\n",
				labels[t], q.Calls, p.Calls, q.Kong-p.Kong, q.Plugins-p.Plugins, q.Redis-p.Redis)
		}
	}
	return nil
}

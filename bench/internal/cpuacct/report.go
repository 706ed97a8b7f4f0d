package cpuacct

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Roles of the processes a run watches. A plugin server is "plugin:<name>".
const (
	RoleKong     = "kong"     // the Kong (nginx) worker
	RoleRedis    = "redis"    // redis-server
	RoleUpstream = "upstream" // the upstream's worker(s)
	RoleClient   = "client"   // the load generator (wrk)
	PluginPrefix = "plugin:"
)

// Report is one accounted run of one target.
type Report struct {
	Target       string                   `json:"target"`
	Requests     int64                    `json:"requests"`
	Non2xx       int64                    `json:"non2xx"`
	SocketErrors int64                    `json:"socket_errors"`
	Elapsed      time.Duration            `json:"elapsed_ns"`
	CPU          map[string]time.Duration `json:"cpu_ns"` // by role
	MachineBusy  time.Duration            `json:"machine_busy_ns"`
	MachineTotal time.Duration            `json:"machine_total_ns"`
	// PDK is the difference of the plugin servers' PDK-call histograms,
	// by plugin (Count: events handled, Sum: PDK calls). Plugins without
	// metrics (the empty plugin) are absent: KnownEvents/KnownCalls say.
	PDK         map[string]PDKCalls     `json:"pdk"`
	KnownEvents float64                 `json:"known_events_per_request,omitempty"`
	KnownCalls  float64                 `json:"known_calls_per_request,omitempty"`
	Redis       map[string]RedisCommand `json:"redis_commands"`
	RedisCPU    time.Duration           `json:"redis_cpu_ns"` // Redis's own INFO figure
}

// Snapshot is the state before or after a run.
type Snapshot struct {
	At          time.Time
	CPU         map[string]time.Duration
	Busy, Total time.Duration
	PDK         map[string]PDKCalls
	Redis       RedisStats
}

// Watch is what a run reads.
type Watch struct {
	Procs   map[string]int // role → pid
	Redis   string         // host:port, "" for none
	Metrics []string       // plugin servers' /metrics URLs
}

// Take reads every counter of w now.
func (w Watch) Take() (Snapshot, error) {
	s := Snapshot{At: time.Now(), CPU: map[string]time.Duration{}, PDK: map[string]PDKCalls{}}
	for role, pid := range w.Procs {
		d, err := ProcCPU(pid)
		if err != nil {
			return s, fmt.Errorf("%s (pid %d): %w", role, pid, err)
		}
		s.CPU[role] = d
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	if s.Busy, s.Total, err = ParseMachineStat(b); err != nil {
		return s, err
	}
	for _, u := range w.Metrics {
		m, err := ScrapePDKCalls(u)
		if err != nil {
			return s, err
		}
		for k, v := range m {
			s.PDK[k] = v
		}
	}
	if w.Redis != "" {
		if s.Redis, err = RedisInfo(w.Redis); err != nil {
			return s, fmt.Errorf("redis: %w", err)
		}
	}
	return s, nil
}

// Diff is the report of the run between before and after (Requests and
// the client's CPU are the caller's to fill in).
func Diff(target string, before, after Snapshot) Report {
	r := Report{Target: target, Elapsed: after.At.Sub(before.At), CPU: map[string]time.Duration{},
		MachineBusy: after.Busy - before.Busy, MachineTotal: after.Total - before.Total,
		PDK: map[string]PDKCalls{}, Redis: map[string]RedisCommand{}, RedisCPU: after.Redis.CPU - before.Redis.CPU}
	for role, a := range after.CPU {
		r.CPU[role] = a - before.CPU[role]
	}
	for p, a := range after.PDK {
		b := before.PDK[p]
		if d := (PDKCalls{Sum: a.Sum - b.Sum, Count: a.Count - b.Count}); d.Count > 0 {
			r.PDK[p] = d
		}
	}
	for c, a := range after.Redis.Commands {
		b := before.Redis.Commands[c]
		if d := (RedisCommand{Calls: a.Calls - b.Calls, Usec: a.Usec - b.Usec}); d.Calls > 0 {
			r.Redis[c] = d
		}
	}
	return r
}

// Per is the cost of one request of a report, in microseconds.
type Per struct {
	Target                                 string
	RPS                                    float64
	Kong, Plugins, Redis, Upstream, Client float64 // CPU µs per request by role
	Others                                 float64 // the machine's busy time not in a watched process
	Idle                                   float64
	KongBusy                               float64 // share of one core the Kong worker used
	Events, Calls                          float64 // plugin events and PDK calls per request
	RedisCalls, RedisUsec                  float64 // Redis commands and their server time per request
	Non2xx                                 int64
	Runs                                   int // runs behind the figures (MedianPer)
}

func us(d time.Duration, n int64) float64 { return float64(d) / 1e3 / float64(n) }

// PerRequest turns a report into costs per request.
func (r Report) PerRequest() Per {
	n := max(r.Requests, 1)
	p := Per{Target: r.Target, Runs: 1, RPS: float64(r.Requests) / r.Elapsed.Seconds(), Non2xx: r.Non2xx + r.SocketErrors}
	var ours time.Duration
	for role, d := range r.CPU {
		ours += d
		switch {
		case role == RoleKong:
			p.Kong = us(d, n)
		case role == RoleRedis:
			p.Redis = us(d, n)
		case role == RoleUpstream:
			p.Upstream = us(d, n)
		case role == RoleClient:
			p.Client = us(d, n)
		case strings.HasPrefix(role, PluginPrefix):
			p.Plugins += us(d, n)
		}
	}
	p.Others = max(0, us(r.MachineBusy-ours, n))
	p.Idle = us(r.MachineTotal-r.MachineBusy, n)
	p.KongBusy = float64(r.CPU[RoleKong]) / float64(r.Elapsed)
	p.Events, p.Calls = r.KnownEvents, r.KnownCalls
	for _, c := range r.PDK {
		p.Events += c.Count / float64(n)
		p.Calls += c.Sum / float64(n)
	}
	for _, c := range r.Redis {
		p.RedisCalls += float64(c.Calls) / float64(n)
		p.RedisUsec += c.Usec / float64(n)
	}
	return p
}

// ReadDir reads every JSON report of dir (one per target and round), by
// target.
func ReadDir(dir string) (map[string][]Report, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]Report{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out[r.Target] = append(out[r.Target], r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cpuacct: no report in %s", dir)
	}
	return out, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianPer is the per-request cost of a target's runs, each figure the
// median over the runs (non-2xx answers summed): a neighbour's burst in
// one round does not make the figure.
func MedianPer(runs []Report) Per {
	if len(runs) == 0 {
		return Per{}
	}
	pers := make([]Per, len(runs))
	for i, r := range runs {
		pers[i] = r.PerRequest()
	}
	m := func(f func(Per) float64) float64 {
		v := make([]float64, len(pers))
		for i, p := range pers {
			v[i] = f(p)
		}
		return median(v)
	}
	out := Per{Target: runs[0].Target, Runs: len(runs),
		RPS: m(func(p Per) float64 { return p.RPS }), Kong: m(func(p Per) float64 { return p.Kong }),
		Plugins: m(func(p Per) float64 { return p.Plugins }), Redis: m(func(p Per) float64 { return p.Redis }),
		Upstream: m(func(p Per) float64 { return p.Upstream }), Client: m(func(p Per) float64 { return p.Client }),
		Others: m(func(p Per) float64 { return p.Others }), Idle: m(func(p Per) float64 { return p.Idle }),
		KongBusy: m(func(p Per) float64 { return p.KongBusy }), Events: m(func(p Per) float64 { return p.Events }),
		Calls: m(func(p Per) float64 { return p.Calls }), RedisCalls: m(func(p Per) float64 { return p.RedisCalls }),
		RedisUsec: m(func(p Per) float64 { return p.RedisUsec })}
	for _, p := range pers {
		out.Non2xx += p.Non2xx
	}
	return out
}

// Medians is MedianPer of every target.
func Medians(reports map[string][]Report) map[string]Per {
	out := make(map[string]Per, len(reports))
	for t, runs := range reports {
		out[t] = MedianPer(runs)
	}
	return out
}

// Model is the plugin-server protocol's cost, measured by difference: an
// event with no PDK call (the empty plugin) against no plugin, and a
// PDK call (the same plugin making N calls) against the empty event.
type Model struct {
	KongEvent, GoEvent float64 // µs of CPU per event, Kong worker and plugin server
	KongCall, GoCall   float64 // µs of CPU per PDK call
	KongBase           float64 // the Kong worker's µs per request with no plugin
	OK                 bool
}

// NewModel derives the model from the costs of plain (no plugin), empty
// (one event, no call) and calls (one event, N calls).
func NewModel(pers map[string]Per, plain, empty, calls string) Model {
	p, ok1 := pers[plain]
	e, ok2 := pers[empty]
	c, ok3 := pers[calls]
	if !ok1 || !ok2 || !ok3 {
		return Model{}
	}
	n := c.Calls - e.Calls
	if n <= 0 || e.Events <= 0 {
		return Model{}
	}
	return Model{
		KongEvent: (e.Kong - p.Kong) / e.Events, GoEvent: e.Plugins / e.Events,
		KongCall: (c.Kong - e.Kong) / n, GoCall: (c.Plugins - e.Plugins) / n,
		KongBase: p.Kong, OK: true,
	}
}

// Sentence states the model's figures, for the server named.
func (m Model) Sentence(server string) string {
	return fmt.Sprintf("Protocol cost with %s, by difference (CPU µs): one plugin event with no PDK call costs the Kong worker **%.1f µs** and the plugin server **%.1f µs**; each PDK call (get_method) adds **%.1f µs** in the Kong worker and **%.1f µs** in the plugin server.",
		server, m.KongEvent, m.GoEvent, m.KongCall, m.GoCall)
}

// Breakdown splits one target's cost per request with the model.
type Breakdown struct {
	Target                           string
	KongBase, KongProtocol, KongRest float64 // Kong worker: as with no plugin, the protocol, the rest (Lua plugins, bigger PDK answers)
	GoProtocol, GoWork               float64 // plugin servers: the protocol, the plugins' own work
	Redis                            float64 // redis-server CPU
	Events, Calls                    float64
}

// Split applies the model to a target's cost.
func (m Model) Split(p Per) Breakdown {
	b := Breakdown{Target: p.Target, Events: p.Events, Calls: p.Calls, Redis: p.Redis, KongBase: m.KongBase}
	b.KongProtocol = p.Events*m.KongEvent + p.Calls*m.KongCall
	b.KongRest = p.Kong - m.KongBase - b.KongProtocol
	b.GoProtocol = p.Events*m.GoEvent + p.Calls*m.GoCall
	b.GoWork = p.Plugins - b.GoProtocol
	return b
}

// WriteTable prints the targets' costs (in order; absent ones skipped) as a
// Markdown table of CPU µs per request by process, then the protocol
// model and the breakdown of every target.
func WriteTable(w io.Writer, pers map[string]Per, order []string, labels map[string]string, m Model) {
	fmt.Fprintln(w, "| target | runs | req/s | Kong worker µs/req (core busy) | plugin servers µs/req | Redis µs/req | upstream µs/req | wrk µs/req | other processes µs/req | idle µs/req | events/req | PDK calls/req | Redis cmds/req (server µs) | non-2xx |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	names := order
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(pers))
	}
	label := func(t string) string {
		if l, ok := labels[t]; ok {
			return l
		}
		return t
	}
	for _, t := range names {
		p, ok := pers[t]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f (%.0f %%) | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f (%.1f) | %d |\n",
			label(t), p.Runs, p.RPS, p.Kong, p.KongBusy*100, p.Plugins, p.Redis, p.Upstream, p.Client, p.Others, p.Idle,
			p.Events, p.Calls, p.RedisCalls, p.RedisUsec, p.Non2xx)
	}
	if !m.OK {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s The Kong worker spends %.1f µs on a request with no plugin.\n\n", m.Sentence("go-pdk's server"), m.KongBase)
	fmt.Fprintln(w, "| target | events/req | PDK calls/req | Kong worker: no-plugin base + protocol + rest = total µs | plugin servers: protocol + Go work = total µs | Redis µs |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, t := range names {
		p, ok := pers[t]
		if !ok {
			continue
		}
		b := m.Split(p)
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %.1f + %.1f + %.1f = %.1f | %.1f + %.1f = %.1f | %.1f |\n",
			label(t), b.Events, b.Calls, b.KongBase, b.KongProtocol, b.KongRest, b.KongBase+b.KongProtocol+b.KongRest,
			b.GoProtocol, b.GoWork, b.GoProtocol+b.GoWork, b.Redis)
	}
}

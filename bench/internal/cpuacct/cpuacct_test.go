package cpuacct

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcStatIsReadAfterTheCommandName(t *testing.T) {
	// a command name with spaces and a ')' must not shift the fields
	line := "4242 (nginx: worker) x) S 1 1 1 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 123 456 789\n"
	d, err := ParseProcStat([]byte(line))
	if err != nil || d != 325*ClockTick {
		t.Fatalf("ParseProcStat = %v, %v; want 3.25s", d, err)
	}
	for _, bad := range []string{"", "4242 nginx S 1", "4242 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 1 1 1 1 1 a b"} {
		if _, err := ParseProcStat([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// our own process parses
	if _, err := ProcCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestMachineStatCountsIdleAndIowaitAsNotBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	text := "cpu  100 10 50 800 40 0 5 0 30 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n"
	busy, total, err := ParseMachineStat([]byte(text))
	if err != nil || busy != 165*ClockTick || total != 1005*ClockTick {
		t.Fatalf("busy %v total %v err %v", busy, total, err)
	}
	if _, _, err := ParseMachineStat([]byte("intr 1 2 3\n")); !errors.Is(err, ErrFormat) {
		t.Fatalf("no cpu line: %v", err)
	}
}

func TestRedisInfoParsesCPUAndCommandStats(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n# Commandstats\r\n" +
		"cmdstat_evalsha:calls=10,usec=120,usec_per_call=12.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setname:calls=2,usec=4,usec_per_call=2.00\r\n"
	st, err := ParseRedisInfo(info)
	if err != nil || st.CPU != 3750*time.Millisecond || st.Commands["evalsha"] != (RedisCommand{10, 120}) ||
		st.Commands["client|setname"].Calls != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := ParseRedisInfo("# Server\r\nredis_version:7\r\n"); !errors.Is(err, ErrFormat) {
		t.Fatalf("no CPU lines: %v", err)
	}
}

// RedisInfo speaks RESP to a server that answers one bulk string.
func TestRedisInfoOverRESP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	body := "used_cpu_sys:1.0\r\nused_cpu_user:1.0\r\ncmdstat_incrby:calls=3,usec=9,usec_per_call=3.00\r\n"
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for range 7 { // *2, $4, INFO, $10, everything: 5 lines (+ slack)
			l, err := r.ReadString('\n')
			if err != nil || strings.TrimSpace(l) == "everything" {
				break
			}
		}
		_, _ = c.Write([]byte("$" + strconv.Itoa(len(body)) + "\r\n" + body + "\r\n"))
	}()
	st, err := RedisInfo(ln.Addr().String())
	if err != nil || st.CPU != 2*time.Second || st.Commands["incrby"].Calls != 3 {
		t.Fatalf("%+v %v", st, err)
	}
}

func TestPDKCallsAreReadFromTheHistogram(t *testing.T) {
	text := `# HELP edgeguard_plugin_pdk_calls PDK round trips per request, by plugin.
edgeguard_plugin_pdk_calls_bucket{plugin="edgeguard",le="6"} 10
edgeguard_plugin_pdk_calls_sum{plugin="edgeguard"} 60
edgeguard_plugin_pdk_calls_count{plugin="edgeguard"} 10
edgeguard_plugin_pdk_calls_sum{plugin="keycloak-jwt"} 1.5e+06
edgeguard_plugin_pdk_calls_count{plugin="keycloak-jwt"} 300000
`
	got := ParsePDKCalls(text)
	if got["edgeguard"] != (PDKCalls{60, 10}) || got["keycloak-jwt"] != (PDKCalls{1.5e6, 3e5}) || len(got) != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestDiffAndPerRequest(t *testing.T) {
	t0 := time.Unix(1000, 0)
	before := Snapshot{At: t0, CPU: map[string]time.Duration{RoleKong: time.Second, "plugin:edgeguard": 0},
		Busy: 10 * time.Second, Total: 20 * time.Second,
		PDK:   map[string]PDKCalls{"edgeguard": {Sum: 60, Count: 10}, "header-guard": {Sum: 3, Count: 1}},
		Redis: RedisStats{CPU: time.Second, Commands: map[string]RedisCommand{"evalsha": {Calls: 5, Usec: 50}}}}
	after := Snapshot{At: t0.Add(10 * time.Second), CPU: map[string]time.Duration{RoleKong: 6 * time.Second, "plugin:edgeguard": 3 * time.Second},
		Busy: 28 * time.Second, Total: 40 * time.Second,
		PDK:   map[string]PDKCalls{"edgeguard": {Sum: 600060, Count: 100010}, "header-guard": {Sum: 3, Count: 1}},
		Redis: RedisStats{CPU: 2 * time.Second, Commands: map[string]RedisCommand{"evalsha": {Calls: 100005, Usec: 1000050}}}}
	r := Diff("eg-jwt", before, after)
	r.Requests = 100000
	r.CPU[RoleClient] = 2 * time.Second
	r.CPU[RoleRedis] = time.Second
	if _, ok := r.PDK["header-guard"]; ok {
		t.Fatal("an idle plugin is in the report")
	}
	p := r.PerRequest()
	// kong 5 s, plugin 3 s, client 2 s, redis 1 s over 100k requests; machine busy 18 s → others 7 s
	if p.Kong != 50 || p.Plugins != 30 || p.Client != 20 || p.Redis != 10 || p.Others != 70 || p.Idle != 20 ||
		p.Events != 1 || p.Calls != 6 || p.RedisCalls != 1 || p.RedisUsec != 10 || p.RPS != 10000 || p.KongBusy != 0.5 {
		t.Fatalf("%+v", p)
	}
}

func TestModelSplitsACostByDifference(t *testing.T) {
	mk := func(name string, kong, plugin time.Duration, ev, calls float64) Report {
		return Report{Target: name, Requests: 1000, Elapsed: time.Second, KnownEvents: ev, KnownCalls: calls,
			CPU: map[string]time.Duration{RoleKong: kong, "plugin:x": plugin}}
	}
	reports := map[string][]Report{
		"plain": {mk("plain", 60*time.Millisecond, 0, 0, 0)},
		"empty": {mk("empty", 90*time.Millisecond, 30*time.Millisecond, 1, 0)},  // event: 30 + 30 µs
		"pdk8":  {mk("pdk8", 170*time.Millisecond, 150*time.Millisecond, 1, 8)}, // call: 10 + 15 µs
		"eg":    {mk("eg", 170*time.Millisecond, 140*time.Millisecond, 1, 6)},
	}
	pers := Medians(reports)
	m := NewModel(pers, "plain", "empty", "pdk8")
	if !m.OK || m.KongEvent != 30 || m.GoEvent != 30 || m.KongCall != 10 || m.GoCall != 15 || m.KongBase != 60 {
		t.Fatalf("%+v", m)
	}
	b := m.Split(pers["eg"])
	// Kong: 60 base + (30 + 6×10) protocol + 20 rest; Go: (30 + 6×15) protocol + 20 work
	if b.KongProtocol != 90 || b.KongRest != 20 || b.GoProtocol != 120 || b.GoWork != 20 {
		t.Fatalf("%+v", b)
	}
	if NewModel(pers, "plain", "empty", "absent").OK {
		t.Fatal("a model without the calls run")
	}
	var out bytes.Buffer
	WriteTable(&out, pers, []string{"plain", "empty", "pdk8", "eg"}, map[string]string{"eg": "the chain"}, m)
	for _, want := range []string{"| the chain | 1 | 1000 | 170.0 (17 %) | 140.0 |", "**30.0 µs**", "| the chain | 1.00 | 6.00 | 60.0 + 90.0 + 20.0 = 170.0 | 120.0 + 20.0 = 140.0 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// One round disturbed by a neighbour does not make a target's figure.
func TestMedianPerTakesEachFigureAcrossRounds(t *testing.T) {
	mk := func(kong time.Duration, non2xx int64) Report {
		return Report{Target: "t", Requests: 1000, Elapsed: time.Second, Non2xx: non2xx,
			CPU: map[string]time.Duration{RoleKong: kong}}
	}
	p := MedianPer([]Report{mk(50*time.Millisecond, 0), mk(400*time.Millisecond, 2), mk(60*time.Millisecond, 1)})
	if p.Kong != 60 || p.Runs != 3 || p.Non2xx != 3 || p.RPS != 1000 {
		t.Fatalf("%+v", p)
	}
	if (MedianPer(nil) != Per{}) {
		t.Fatal("no runs, some figures")
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add("1 (a) S 1 1 1 0 -1 1 1 1 1 1 5 6 0 0 20 0 1 0 1 1 1")
	f.Add("1 ((()) S")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseProcStat([]byte(s))
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
	})
}

// Package cpuacct accounts where a load run's CPU time goes: it reads the
// CPU time of named processes (/proc/<pid>/stat), of the whole machine
// (/proc/stat), Redis's own counters (INFO cpu and commandstats) and the
// plugin servers' PDK-call histograms (their Prometheus /metrics) before
// and after a run, and turns the differences into a cost per request of
// each process. Under saturation every process on the machine is
// CPU-bound, so CPU time per request is where a request's time goes.
//
// It is for the load runs of bench/ on Linux only; it reads, never
// changes, the processes it watches (no CONFIG RESETSTAT).
package cpuacct

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ClockTick is the unit of /proc CPU times (USER_HZ, 100 on every Linux
// architecture Go supports).
const ClockTick = 10 * time.Millisecond

// ErrFormat is wrapped by every parse error.
var ErrFormat = errors.New("cpuacct: unexpected format")

// ParseProcStat returns user+system CPU time from the text of
// /proc/<pid>/stat (fields 14 and 15, counted after the command name,
// which may hold spaces and parentheses).
func ParseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: no command name in /proc/<pid>/stat", ErrFormat)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14 → f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc/<pid>/stat has %d fields after the name", ErrFormat, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || u > 1<<40 || s > 1<<40 {
		return 0, fmt.Errorf("%w: utime/stime not plausible tick counts", ErrFormat)
	}
	return time.Duration(u+s) * ClockTick, nil
}

// ProcCPU is ParseProcStat of a live process.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseProcStat(b)
}

// ParseMachineStat returns the busy and total CPU time of every core
// together from the text of /proc/stat (its "cpu " line; idle and iowait
// are not busy).
func ParseMachineStat(b []byte) (busy, total time.Duration, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var sum, idle uint64
		for i, v := range f[1:] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%w: /proc/stat cpu line", ErrFormat)
			}
			// guest and guest_nice (fields 9, 10) are already in user
			if i >= 8 {
				break
			}
			sum += n
			if i == 3 || i == 4 { // idle, iowait
				idle += n
			}
		}
		return time.Duration(sum-idle) * ClockTick, time.Duration(sum) * ClockTick, nil
	}
	return 0, 0, fmt.Errorf("%w: no cpu line in /proc/stat", ErrFormat)
}

// RedisCommand is one command's line of INFO commandstats.
type RedisCommand struct {
	Calls int64   `json:"calls"`
	Usec  float64 `json:"usec"`
}

// RedisStats are the Redis counters a run reads.
type RedisStats struct {
	CPU      time.Duration           `json:"cpu_ns"` // used_cpu_user + used_cpu_sys of the server
	Commands map[string]RedisCommand `json:"commands"`
}

var reCmdstat = regexp.MustCompile(`^cmdstat_([a-z0-9_|-]+):calls=(\d+),usec=(\d+)`)

// ParseRedisInfo reads INFO's "used_cpu_*" and "cmdstat_*" lines.
func ParseRedisInfo(text string) (RedisStats, error) {
	st := RedisStats{Commands: map[string]RedisCommand{}}
	var haveCPU int
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return st, fmt.Errorf("%w: %s", ErrFormat, k)
			}
			st.CPU += time.Duration(f * 1e9)
			haveCPU++
		} else if m := reCmdstat.FindStringSubmatch(line); m != nil {
			calls, _ := strconv.ParseInt(m[2], 10, 64)
			usec, _ := strconv.ParseFloat(m[3], 64)
			st.Commands[m[1]] = RedisCommand{Calls: calls, Usec: usec}
		}
	}
	if haveCPU != 2 {
		return st, fmt.Errorf("%w: INFO has no used_cpu_user/used_cpu_sys", ErrFormat)
	}
	return st, nil
}

// RedisInfo asks the Redis at addr for INFO everything (RESP over TCP, no
// password: the load runs' Redis).
func RedisInfo(addr string) (RedisStats, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return RedisStats{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "*2\r\n$4\r\nINFO\r\n$10\r\neverything\r\n"); err != nil {
		return RedisStats{}, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return RedisStats{}, err
	}
	if !strings.HasPrefix(head, "$") {
		return RedisStats{}, fmt.Errorf("%w: INFO answered %q", ErrFormat, strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 || n > 1<<22 {
		return RedisStats{}, fmt.Errorf("%w: INFO length %q", ErrFormat, strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return RedisStats{}, err
	}
	return ParseRedisInfo(string(body))
}

// PDKCalls is one plugin's edgeguard_plugin_pdk_calls histogram: Count
// events (requests the plugin handled), Sum PDK calls.
type PDKCalls struct {
	Sum   float64 `json:"sum"`
	Count float64 `json:"count"`
}

var reHist = regexp.MustCompile(`^edgeguard_plugin_pdk_calls_(sum|count)\{plugin="([a-z0-9-]+)"\} ([0-9.e+-]+)$`)

// ParsePDKCalls reads the PDK-call histograms of a plugin server's
// Prometheus text, by plugin.
func ParsePDKCalls(text string) map[string]PDKCalls {
	out := map[string]PDKCalls{}
	for _, line := range strings.Split(text, "\n") {
		m := reHist.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		p := out[m[2]]
		if m[1] == "sum" {
			p.Sum = v
		} else {
			p.Count = v
		}
		out[m[2]] = p
	}
	return out
}

// ScrapePDKCalls GETs url (a plugin server's /metrics) and parses it.
func ScrapePDKCalls(url string) (map[string]PDKCalls, error) {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return ParsePDKCalls(string(b)), nil
}

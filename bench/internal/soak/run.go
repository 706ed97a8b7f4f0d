package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeguard/edgeguard/bench/internal/rig"
)

// The edge's defaults the bench kong.yml keeps (plugins' READMEs), from
// which the bounds on the rig's counters follow.
const (
	// keycloak-jwt min_refresh_interval_seconds: an unknown kid refreshes
	// the JWKS at most once per interval per issuer.
	MinRefreshInterval = 10 * time.Second
	// keycloak-jwt refresh_interval_seconds: the background refresh.
	RefreshInterval = 300 * time.Second
	// keycloak-apikey failures_per_minute (burst = the rate): failed
	// authentications per client address, checked before any lookup.
	FailuresPerMinute = 20
	// keycloak-apikey positive_ttl_seconds: a valid key is looked up again
	// after this long (the Redis layer's entry expires with it).
	PositiveTTL = 60 * time.Second
)

// Bounds are the most JWKS fetches and validate calls the design allows in
// a window of length d.
type Bounds struct {
	JWKSFetches   int64
	ValidateCalls int64
}

// BoundsFor computes the bounds for a window d with validKeys valid keys
// and one attacking client address: JWKS = one per MinRefreshInterval
// (unknown kids) + one per RefreshInterval (background) + 1; validate =
// the attacker's failure budget (burst + rate × d) + one lookup per valid
// key per PositiveTTL (+ 1 each).
func BoundsFor(d time.Duration, validKeys int) Bounds {
	ceil := func(a, b time.Duration) int64 { return int64(math.Ceil(float64(a) / float64(b))) }
	return Bounds{
		JWKSFetches:   ceil(d, MinRefreshInterval) + ceil(d, RefreshInterval) + 1,
		ValidateCalls: FailuresPerMinute + ceil(d*FailuresPerMinute, time.Minute) + int64(validKeys)*(ceil(d, PositiveTTL)+1),
	}
}

// Config of a soak run.
type Config struct {
	URL         string        // the gateway route with the full chain, e.g. http://127.0.0.1:8000/chain
	RigURL      string        // the rig (its /stats)
	Creds       *Credentials  // the mix's credentials
	Rate        int           // requests per second, fixed (≥ 1)
	Duration    time.Duration // the measured phase
	Warmup      time.Duration // traffic at the same rate before it (statuses counted, RSS and latency not)
	SampleEvery time.Duration // RSS sampling period (default 5 s)
	PID         int           // the gateway's pid (RSS)
	MaxInFlight int           // requests in flight before the generator skips one (default 1024)
	Timeout     time.Duration // one request (default 10 s)
	Progress    io.Writer     // a line a minute; nil: none
}

// Check is one pass/fail criterion.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Result of a run.
type Result struct {
	Rate             int
	Duration, Warmup time.Duration
	Sent, Skipped    int64
	TransportErrors  int64
	ByClass          map[string]int64            // "2xx", "4xx", "5xx" (warm-up included)
	ByKind           map[string]map[string]int64 // kind → "200" | "401 unknown_kid" | …
	ValidNot200      int64
	P50, P99, Max    time.Duration // valid requests of the measured phase, from send to body read
	RSS              RSSSummary
	Samples          []Sample
	RigBefore        rig.Stats
	RigAfter         rig.Stats
	Bounds           Bounds
	Checks           []Check
}

// OK reports whether every check passed.
func (r *Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

type counters struct {
	mu       sync.Mutex
	byClass  map[string]int64
	byKind   map[string]map[string]int64
	lat      []time.Duration
	validBad int64
}

func (c *counters) add(k Kind, outcome string, status int, lat time.Duration, measured bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if status > 0 {
		c.byClass[fmt.Sprintf("%dxx", status/100)]++
	}
	m := c.byKind[k.String()]
	if m == nil {
		m = map[string]int64{}
		c.byKind[k.String()] = m
	}
	m[outcome]++
	if k.Valid() {
		if status != http.StatusOK {
			c.validBad++
		} else if measured {
			c.lat = append(c.lat, lat)
		}
	}
}

// Run sends the schedule and reports. It returns an error only when it
// could not measure (bad config, the rig or the gateway's /proc entry gone);
// failed checks are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.URL == "" || cfg.RigURL == "" || cfg.Creds == nil || cfg.Rate < 1 || cfg.Duration <= 0 || cfg.PID <= 0 {
		return nil, errors.New("soak: URL, rig URL, credentials, rate ≥ 1, duration and pid are required")
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 5 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if _, err := ReadRSS(cfg.PID); err != nil {
		return nil, err
	}
	client := &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: cfg.MaxInFlight, MaxIdleConnsPerHost: cfg.MaxInFlight,
			IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	res := &Result{Rate: cfg.Rate, Duration: cfg.Duration, Warmup: cfg.Warmup}
	var err error
	if res.RigBefore, err = rigStats(ctx, client, cfg.RigURL); err != nil {
		return nil, err
	}

	c := &counters{byClass: map[string]int64{}, byKind: map[string]map[string]int64{}}
	var (
		wg        sync.WaitGroup
		inFlight  atomic.Int64
		transport atomic.Int64
		skipped   int64
	)
	interval := time.Second / time.Duration(cfg.Rate)
	total := int((cfg.Warmup + cfg.Duration) / interval)
	warm := int(cfg.Warmup / interval)
	start := time.Now()
	measuredStart := start.Add(cfg.Warmup)

	// RSS sampler: the measured phase only.
	samplerDone := make(chan struct{})
	samplerCtx, stopSampler := context.WithCancel(ctx)
	var sampleErr error
	go func() {
		defer close(samplerDone)
		select {
		case <-time.After(time.Until(measuredStart)):
		case <-samplerCtx.Done():
			return
		}
		tick := time.NewTicker(cfg.SampleEvery)
		defer tick.Stop()
		next := time.Now().Add(time.Minute)
		for {
			rss, err := ReadRSS(cfg.PID)
			if err != nil {
				sampleErr = err
				return
			}
			res.Samples = append(res.Samples, Sample{At: time.Since(measuredStart), RSS: rss})
			if cfg.Progress != nil && time.Now().After(next) {
				next = next.Add(time.Minute)
				c.mu.Lock()
				fmt.Fprintf(cfg.Progress, "soak: %s of %s, rss %.1f MiB, 5xx %d, transport errors %d\n",
					time.Since(measuredStart).Round(time.Second), cfg.Duration, float64(rss)/(1<<20), c.byClass["5xx"], transport.Load())
				c.mu.Unlock()
			}
			select {
			case <-tick.C:
			case <-samplerCtx.Done():
				return
			}
		}
	}()

	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				i = total
				continue
			}
		}
		if inFlight.Load() >= int64(cfg.MaxInFlight) {
			skipped++
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer inFlight.Add(-1)
			k := KindOf(i)
			status, code, lat, err := send(ctx, client, cfg, i)
			if err != nil {
				transport.Add(1)
				c.add(k, "transport_error", 0, 0, false)
				return
			}
			outcome := strconv.Itoa(status)
			if code != "" {
				outcome += " " + code
			}
			c.add(k, outcome, status, lat, i >= warm)
		}(i)
	}
	wg.Wait()
	stopSampler()
	<-samplerDone
	if sampleErr != nil {
		return nil, sampleErr
	}
	if res.RigAfter, err = rigStats(ctx, client, cfg.RigURL); err != nil {
		return nil, err
	}

	res.Sent, res.Skipped, res.TransportErrors = int64(total)-skipped, skipped, transport.Load()
	res.ByClass, res.ByKind, res.ValidNot200 = c.byClass, c.byKind, c.validBad
	if len(c.lat) > 0 {
		slices.Sort(c.lat)
		res.P50, res.P99, res.Max = c.lat[len(c.lat)/2], c.lat[len(c.lat)*99/100], c.lat[len(c.lat)-1]
	}
	if res.RSS, err = Summarize(res.Samples); err != nil {
		return nil, err
	}
	res.Bounds = BoundsFor(cfg.Warmup+cfg.Duration, len(cfg.Creds.Keys))
	jwks := res.RigAfter.JWKSFetches - res.RigBefore.JWKSFetches
	calls := res.RigAfter.ValidateCalls - res.RigBefore.ValidateCalls
	res.Checks = []Check{
		{"zero 5xx", res.ByClass["5xx"] == 0, fmt.Sprintf("%d", res.ByClass["5xx"])},
		{"no transport errors, no skipped sends", res.TransportErrors == 0 && res.Skipped == 0,
			fmt.Sprintf("%d errors, %d skipped", res.TransportErrors, res.Skipped)},
		{"every valid credential answered 200", res.ValidNot200 == 0, fmt.Sprintf("%d not 200", res.ValidNot200)},
		{"memory flat", res.RSS.Flat, fmt.Sprintf("last-quarter mean RSS %+.1f %% vs the first quarter (threshold %.0f %%)",
			res.RSS.GrowthPercent, res.RSS.FlatThresholdPct)},
		{"JWKS fetches bounded", jwks <= res.Bounds.JWKSFetches, fmt.Sprintf("%d ≤ %d", jwks, res.Bounds.JWKSFetches)},
		{"validate calls bounded", calls <= res.Bounds.ValidateCalls, fmt.Sprintf("%d ≤ %d", calls, res.Bounds.ValidateCalls)},
	}
	return res, nil
}

// send makes request i and returns its status, its error code (4xx/5xx
// JSON bodies) and its latency from send to the end of the body.
func send(ctx context.Context, client *http.Client, cfg Config, i int) (int, string, time.Duration, error) {
	auth, err := cfg.Creds.Authorization(i)
	if err != nil {
		return 0, "", 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("X-Forwarded-For", ClientIP(i))
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	lat := time.Since(t0)
	if err != nil {
		return 0, "", 0, err
	}
	return resp.StatusCode, errorCode(resp.StatusCode, body), lat, nil
}

// errorCode extracts {"error":{"code":…}} from an error answer.
func errorCode(status int, body []byte) string {
	if status < 400 {
		return ""
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return "(no code)"
	}
	if len(e.Error.Code) > 64 {
		return "(long code)"
	}
	return e.Error.Code
}

func rigStats(ctx context.Context, client *http.Client, rigURL string) (rig.Stats, error) {
	var s rig.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rigURL+rig.StatsPath, nil)
	if err != nil {
		return s, fmt.Errorf("soak: rig stats: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return s, fmt.Errorf("soak: rig stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("soak: rig stats: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&s); err != nil {
		return s, fmt.Errorf("soak: rig stats: %w", err)
	}
	return s, nil
}

// Write prints the report as Markdown.
func (r *Result) Write(w io.Writer) {
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Fprintf(w, "### Soak: %d req/s for %s (+ %s warm-up), full chain\n\n", r.Rate, r.Duration, r.Warmup)
	fmt.Fprintf(w, "Sent %d requests (%d skipped by the generator, %d transport errors); by class: 2xx %d, 4xx %d, 5xx %d.\n\n",
		r.Sent, r.Skipped, r.TransportErrors, r.ByClass["2xx"], r.ByClass["4xx"], r.ByClass["5xx"])
	fmt.Fprintf(w, "| request kind | answers |\n|---|---|\n")
	for k := Kind(0); k < numKinds; k++ {
		m := r.ByKind[k.String()]
		keys := make([]string, 0, len(m))
		for o := range m {
			keys = append(keys, o)
		}
		sort.Strings(keys)
		s := ""
		for _, o := range keys {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s × %d", o, m[o])
		}
		fmt.Fprintf(w, "| %s | %s |\n", k, s)
	}
	fmt.Fprintf(w, "\nValid requests (measured phase): p50 %s, p99 %s, max %s.\n\n", r.P50.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	fmt.Fprintf(w, "Gateway RSS (%d samples): first %s, last %s, min %s, max %s; first-quarter mean %s, last-quarter mean %s (%+.1f %%).\n\n",
		r.RSS.Samples, mib(r.RSS.First), mib(r.RSS.Last), mib(r.RSS.Min), mib(r.RSS.Max),
		mib(r.RSS.FirstQuarterMean), mib(r.RSS.LastQuarterMean), r.RSS.GrowthPercent)
	if per := PerMinute(r.Samples); len(per) > 1 {
		fmt.Fprintf(w, "RSS by minute (mean of the samples):")
		for _, v := range per {
			fmt.Fprintf(w, " %.1f", float64(v)/(1<<20))
		}
		fmt.Fprintf(w, " MiB.\n\n")
	}
	fmt.Fprintf(w, "Rig counters over the run (warm-up included): JWKS fetches %d (bound %d), validate calls %d (bound %d: valid %d, unknown %d, refused %d).\n\n",
		r.RigAfter.JWKSFetches-r.RigBefore.JWKSFetches, r.Bounds.JWKSFetches,
		r.RigAfter.ValidateCalls-r.RigBefore.ValidateCalls, r.Bounds.ValidateCalls,
		r.RigAfter.ValidateValid-r.RigBefore.ValidateValid, r.RigAfter.ValidateUnknown-r.RigBefore.ValidateUnknown,
		r.RigAfter.ValidateBad-r.RigBefore.ValidateBad)
	fmt.Fprintf(w, "| check | result | detail |\n|---|---|---|\n")
	for _, c := range r.Checks {
		v := "PASS"
		if !c.OK {
			v = "FAIL"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", c.Name, v, c.Detail)
	}
}

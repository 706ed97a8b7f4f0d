// Package fixedrate measures latency at a fixed request rate: request i is
// sent at start + i/rate whether or not earlier ones have answered (open
// loop), so the percentiles are those of a gateway under a given load, not
// of a saturated one where wrk's closed loop measures mostly queueing. It
// prints its summary in wrk's --latency format so the same table reads it.
package fixedrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config of one run.
type Config struct {
	URL         string
	Header      http.Header
	Rate        int           // requests per second (≥ 1)
	Duration    time.Duration // > 0
	MaxInFlight int           // beyond: the send is skipped and counted (default 1024)
	Timeout     time.Duration // one request (default 10 s)
}

// Result of a run.
type Result struct {
	Sent, Skipped, Errors, Non2xx int64
	Refusals                      map[string]int64 // non-2xx answers by "status code" (the JSON error code, if any)
	Elapsed                       time.Duration
	P50, P90, P99, Max            time.Duration // of the answered requests, send to end of body
}

// Run sends Rate × Duration requests on schedule.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.URL == "" || cfg.Rate < 1 || cfg.Duration <= 0 {
		return nil, errors.New("fixedrate: URL, rate ≥ 1 and a duration are required")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: cfg.MaxInFlight, MaxIdleConnsPerHost: cfg.MaxInFlight, DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		wg       sync.WaitGroup
		inFlight atomic.Int64
		errs     atomic.Int64
		non2xx   atomic.Int64
		res      Result
	)
	res.Refusals = map[string]int64{}
	interval := time.Second / time.Duration(cfg.Rate)
	total := int(cfg.Duration / interval)
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if inFlight.Load() >= int64(cfg.MaxInFlight) {
			res.Skipped++
			continue
		}
		res.Sent++
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
			if err != nil {
				errs.Add(1)
				return
			}
			for k, v := range cfg.Header {
				req.Header[k] = v
			}
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				errs.Add(1)
				return
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			d := time.Since(t0)
			if err != nil {
				errs.Add(1)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode < 200 || resp.StatusCode > 399 {
				non2xx.Add(1)
				var e struct {
					Error struct {
						Code string `json:"code"`
					} `json:"error"`
				}
				_ = json.Unmarshal(body, &e)
				if len(e.Error.Code) > 64 {
					e.Error.Code = "(long code)"
				}
				res.Refusals[strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, e.Error.Code))]++
			}
			lat = append(lat, d)
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Errors, res.Non2xx = errs.Load(), non2xx.Load()
	if len(lat) == 0 {
		return &res, errors.New("fixedrate: no request was answered")
	}
	slices.Sort(lat)
	pct := func(p int) time.Duration { return lat[min(len(lat)-1, len(lat)*p/100)] }
	res.P50, res.P90, res.P99, res.Max = pct(50), pct(90), pct(99), lat[len(lat)-1]
	return &res, nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.2fus", float64(d)/1e3) }

// WriteWrkFormat prints r as wrk --latency would (the lines wrkout reads),
// with the skipped sends and transport errors as wrk's socket errors.
func (r *Result) WriteWrkFormat(w io.Writer, cfg Config) {
	fmt.Fprintf(w, "Fixed rate %d req/s for %s @ %s (loadrig latency, open loop)\n", cfg.Rate, cfg.Duration, cfg.URL)
	fmt.Fprintf(w, "  Latency Distribution\n     50%%   %s\n     90%%   %s\n     99%%   %s\n", us(r.P50), us(r.P90), us(r.P99))
	fmt.Fprintf(w, "  max %s\n", us(r.Max))
	fmt.Fprintf(w, "  %d requests in %.2fs\n", r.Sent, r.Elapsed.Seconds())
	fmt.Fprintf(w, "  Socket errors: connect 0, read %d, write 0, timeout %d\n", r.Errors, r.Skipped)
	fmt.Fprintf(w, "  Non-2xx or 3xx responses: %d\n", r.Non2xx)
	codes := make([]string, 0, len(r.Refusals))
	for c := range r.Refusals {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "  non-2xx: %s × %d\n", c, r.Refusals[c])
	}
	fmt.Fprintf(w, "Requests/sec: %.2f\n", float64(r.Sent)/r.Elapsed.Seconds())
}

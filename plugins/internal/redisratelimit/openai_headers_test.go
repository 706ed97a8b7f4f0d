package redisratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
)

// withFrozenLocal provisions c on an in-process limiter whose clock never
// moves: every budget and reset below is exact.
func withFrozenLocal(t *testing.T, set map[string]any) *Config {
	t.Helper()
	at := time.Unix(1_700_000_000, 0)
	local, err := ratelimit.NewLocal(ratelimit.LocalConfig{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	return withDecider(t, set, local)
}

var openAIHeaders = []string{HeaderLimitRequests, HeaderRemainingRequests, HeaderResetRequests}

func TestOpenAIRequestHeadersDescribeTheRateLimitWindow(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]any
		before int // requests before the measured one
		status int // 0: allowed
		// OpenAI's x-ratelimit-{limit,remaining,reset}-requests
		limit, remaining, reset string
	}{
		{"one window: the reset rounded up to the ms", map[string]any{"second": 3}, 0, 0, "3", "2", "334ms"},
		{"one window, its last request", map[string]any{"second": 3}, 2, 0, "3", "0", "1s"},
		{"several windows: the one with the fewest remaining", map[string]any{"second": 5, "minute": 3}, 0, 0, "3", "2", "20s"},
		{"several windows: the per-second one when it is tighter", map[string]any{"second": 2, "minute": 100}, 0, 0, "2", "1", "500ms"},
		{"several windows, equal remaining: the longer reset", map[string]any{"second": 60, "minute": 60}, 0, 0, "60", "59", "1s"},
		{"429: the window that refused", map[string]any{"second": 5, "minute": 3}, 3, 429, "3", "0", "1m0s"},
		{"429 by the second while the minute has room", map[string]any{"second": 2, "minute": 100}, 2, 429, "2", "0", "1s"},
		{"429 by the hour", map[string]any{"second": 10, "hour": 2}, 2, 429, "2", "0", "1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := withFrozenLocal(t, tc.config)
			alice := &identity.Identity{Subject: "alice", AuthMethod: "jwt"}
			for i := range tc.before {
				if f := request(alice, "", nil); c.Handle(f).Status != 0 || f.ExitStatus != 0 {
					t.Fatalf("request %d refused: %d", i, f.ExitStatus)
				}
			}
			f := request(alice, "", nil)
			c.Handle(f)
			if f.ExitStatus != tc.status {
				t.Fatalf("status %d, want %d (%s)", f.ExitStatus, tc.status, f.ExitBody)
			}
			h := f.Response
			if tc.status != 0 {
				h = f.ExitHeaders
			}
			for k, want := range map[string]string{HeaderLimitRequests: tc.limit, HeaderRemainingRequests: tc.remaining, HeaderResetRequests: tc.reset} {
				if h[k] != want {
					t.Errorf("%s = %q, want %q (headers %v)", k, h[k], want, h)
				}
			}
			// Both header families describe the same window.
			if h["RateLimit-Limit"] != h[HeaderLimitRequests] || h["RateLimit-Remaining"] != h[HeaderRemainingRequests] {
				t.Errorf("RateLimit-* and x-ratelimit-*-requests disagree: %v", h)
			}
			reset, err := time.ParseDuration(h[HeaderResetRequests])
			if err != nil || reset <= 0 {
				t.Fatalf("%s %q: %v", HeaderResetRequests, h[HeaderResetRequests], err)
			}
			if got := strconv.Itoa(ceilSeconds(reset)); got != h["RateLimit-Reset"] {
				t.Errorf("RateLimit-Reset %q, x-ratelimit-reset-requests %q (%s s)", h["RateLimit-Reset"], h[HeaderResetRequests], got)
			}
		})
	}
}

// fixedDecider answers every request with res, err.
type fixedDecider struct {
	res ratelimit.Result
	err error
}

func (d fixedDecider) Allow(context.Context, string, *ratelimit.Policy) (ratelimit.Result, error) {
	return d.res, d.err
}

func TestNoOpenAIRequestHeadersWhenNothingWasLimited(t *testing.T) {
	alice := &identity.Identity{Subject: "alice"}
	tests := []struct {
		name    string
		c       func(t *testing.T) *Config
		before  int
		id      *identity.Identity
		ip      string
		status  int
		anyRate bool // the rate-limit headers expected (RateLimit-* and OpenAI's go together)
	}{
		{"hide_client_headers, allowed", func(t *testing.T) *Config {
			return withFrozenLocal(t, map[string]any{"second": 1, "hide_client_headers": true})
		}, 0, alice, "", 0, false},
		{"hide_client_headers, 429", func(t *testing.T) *Config {
			return withFrozenLocal(t, map[string]any{"second": 1, "hide_client_headers": true})
		}, 1, alice, "", 429, false},
		{"a decision without limits", func(t *testing.T) *Config {
			return withDecider(t, map[string]any{"second": 1}, fixedDecider{res: ratelimit.Result{Allowed: true}})
		}, 0, alice, "", 0, false},
		{"limiter unavailable (503)", func(t *testing.T) *Config {
			return withDecider(t, map[string]any{"second": 1}, fixedDecider{err: ratelimit.ErrUnavailable})
		}, 0, alice, "", 503, false},
		{"no subject (403)", func(t *testing.T) *Config {
			return withFrozenLocal(t, map[string]any{"second": 1})
		}, 0, nil, "not-an-ip", 403, false},
		{"control: a limited request has both families", func(t *testing.T) *Config {
			return withFrozenLocal(t, map[string]any{"second": 1})
		}, 0, alice, "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c(t)
			for range tc.before {
				c.Handle(request(tc.id, tc.ip, nil))
			}
			f := request(tc.id, tc.ip, nil)
			c.Handle(f)
			if f.ExitStatus != tc.status {
				t.Fatalf("status %d, want %d (%s)", f.ExitStatus, tc.status, f.ExitBody)
			}
			for _, k := range append([]string{"RateLimit-Limit"}, openAIHeaders...) {
				_, inResponse := f.Response[k]
				_, inExit := f.ExitHeaders[k]
				if (inResponse || inExit) != tc.anyRate {
					t.Errorf("%s: on the response %t, on the exit %t; want it present %t", k, inResponse, inExit, tc.anyRate)
				}
			}
		})
	}
}

func TestResetRequestsIsAGoDurationRoundedUpToTheMillisecond(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{time.Nanosecond, "1ms"},
		{time.Microsecond, "1ms"},
		{17 * time.Millisecond, "17ms"},
		{16*time.Millisecond + time.Microsecond, "17ms"},
		{333333 * time.Microsecond, "334ms"},
		{999500 * time.Microsecond, "1s"},
		{time.Second, "1s"},
		{time.Second + 100*time.Microsecond, "1.001s"},
		{6457 * time.Millisecond, "6.457s"},
		{59999500 * time.Microsecond, "1m0s"},
		{6 * time.Minute, "6m0s"},
		{2*time.Minute + 59560*time.Millisecond, "2m59.56s"},
		{time.Hour, "1h0m0s"},
		{24 * time.Hour, "24h0m0s"},
	}
	for _, tc := range tests {
		got := resetRequests(tc.d)
		if got != tc.want {
			t.Errorf("resetRequests(%v) = %q, want %q", tc.d, got, tc.want)
			continue
		}
		back, err := time.ParseDuration(got)
		if err != nil || back < max(tc.d, 0) || back-tc.d >= time.Millisecond && tc.d > 0 {
			t.Errorf("%q parses to %v (%v): want the smallest ms ≥ %v", got, back, err, tc.d)
		}
	}
}

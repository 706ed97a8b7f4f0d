// Package pluginmetrics is the Prometheus view of a plugin server: requests
// and denials per plugin and code, PDK calls per request, and the state of
// the process-wide edge machinery — JWKS key sets (fetches, failures, age),
// API-key validators (cache, calls, revocations), rate limiters (decisions,
// Redis errors, fallback). A plugin server starts before any plugin config
// exists, so the listener address comes from a flag in Kong's
// pluginserver_<name>_start_cmd (-metrics-listen), not from plugin config.
//
// It never labels by identity, key or token: only by plugin, outcome, code,
// issuer.
package pluginmetrics

import (
	"errors"
	"flag"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
)

// Registry holds every metric of this plugin server.
var Registry = prometheus.NewRegistry()

var (
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeguard_plugin_requests_total",
		Help: "Requests handled, by plugin and outcome (allow, deny, error).",
	}, []string{"plugin", "outcome"})
	denials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgeguard_plugin_denials_total",
		Help: "Requests ended by a plugin, by plugin, HTTP status and error code (token_expired, rate_limited…).",
	}, []string{"plugin", "status", "code"})
	keyLookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeguard_apikey_lookups_total",
		Help: "Well-formed API keys the plugins looked up (cache hits and misses); hit ratio = 1 - edgeguard_apikey_cache_misses_total / this.",
	})
	pdkCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edgeguard_plugin_pdk_calls",
		Help:    "PDK round trips per request, by plugin.",
		Buckets: []float64{1, 2, 3, 4, 5, 6, 8, 10, 12, 16},
	}, []string{"plugin"})
)

// limiters is how the collector finds the rate limiters (the redis-ratelimit
// plugin registers its process-wide ones).
var limiters func() []*ratelimit.Limiter

// SetLimiters tells the collector where the process's rate limiters are.
func SetLimiters(f func() []*ratelimit.Limiter) { limiters = f }

func init() {
	Registry.MustRegister(requests, denials, pdkCalls, keyLookups, edgeCollector{},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// APIKeyLookup counts one well-formed API key looked up by a plugin (the
// validator itself counts only misses: its cache-hit path makes no shared
// write). Hit ratio = 1 - edgeguard_apikey_cache_misses_total / lookups.
func APIKeyLookup() { keyLookups.Inc() }

// Observe records one request of a plugin: its PDK calls, and its outcome
// from the exit status (0: passed on) and error code.
func Observe(plugin string, calls, status int, code string) {
	pdkCalls.WithLabelValues(plugin).Observe(float64(calls))
	switch {
	case status == 0:
		requests.WithLabelValues(plugin, "allow").Inc()
	case status >= 500:
		requests.WithLabelValues(plugin, "error").Inc()
		denials.WithLabelValues(plugin, strconv.Itoa(status), code).Inc()
	default:
		requests.WithLabelValues(plugin, "deny").Inc()
		denials.WithLabelValues(plugin, strconv.Itoa(status), code).Inc()
	}
}

var (
	descJWKSFetches   = prometheus.NewDesc("edgeguard_jwks_fetches_total", "JWKS fetch attempts, by issuer.", []string{"issuer"}, nil)
	descJWKSFailures  = prometheus.NewDesc("edgeguard_jwks_fetch_failures_total", "Failed JWKS fetches, by issuer.", []string{"issuer"}, nil)
	descJWKSAge       = prometheus.NewDesc("edgeguard_jwks_key_set_age_seconds", "Age of the key set in use (-1: none yet), by issuer.", []string{"issuer"}, nil)
	descKeyCalls      = prometheus.NewDesc("edgeguard_apikey_validator_calls_total", "Calls to the API-key validator.", nil, nil)
	descKeyMisses     = prometheus.NewDesc("edgeguard_apikey_cache_misses_total", "Lookups not answered by a fresh valid cache entry.", nil, nil)
	descKeyNegHits    = prometheus.NewDesc("edgeguard_apikey_negative_hits_total", "Rejections answered from the cache.", nil, nil)
	descKeyStale      = prometheus.NewDesc("edgeguard_apikey_stale_served_total", "Valid keys served stale while the validator failed.", nil, nil)
	descKeyUnavail    = prometheus.NewDesc("edgeguard_apikey_validator_failures_total", "Failed validator calls.", nil, nil)
	descKeyTooMany    = prometheus.NewDesc("edgeguard_apikey_too_many_failures_total", "Lookups refused by the per-client failure limit.", nil, nil)
	descKeyRevoked    = prometheus.NewDesc("edgeguard_apikey_revocations_total", "Revocation messages applied.", nil, nil)
	descKeyEntries    = prometheus.NewDesc("edgeguard_apikey_cache_entries", "Entries in the in-process API-key cache.", nil, nil)
	descKeyShared     = prometheus.NewDesc("edgeguard_apikey_shared_hits_total", "Lookups answered by the shared Redis layer.", nil, nil)
	descKeyBusy       = prometheus.NewDesc("edgeguard_apikey_validator_busy_total", "Lookups refused because the validator calls in flight were at their cap (503).", nil, nil)
	descKeyInFlight   = prometheus.NewDesc("edgeguard_apikey_validator_in_flight", "Validator calls in flight now.", nil, nil)
	descRLDecisions   = prometheus.NewDesc("edgeguard_ratelimit_decisions_total", "Rate-limit decisions, by source (redis, deny_cache, fallback).", []string{"source"}, nil)
	descRLErrors      = prometheus.NewDesc("edgeguard_ratelimit_redis_errors_total", "Failed or timed-out Redis round trips.", nil, nil)
	descRLFallbackNow = prometheus.NewDesc("edgeguard_ratelimit_fallback_active", "1 while Redis is failing and the fail policy decides.", nil, nil)
)

// edgeCollector reads the process-wide edge machinery at scrape time.
type edgeCollector struct{}

func (edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJWKSFetches, descJWKSFailures, descJWKSAge, descKeyCalls, descKeyMisses,
		descKeyNegHits, descKeyStale, descKeyUnavail, descKeyTooMany, descKeyRevoked, descKeyEntries,
		descKeyShared, descKeyBusy, descKeyInFlight, descRLDecisions, descRLErrors, descRLFallbackNow} {
		ch <- d
	}
}

func (edgeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ks := range jwtauth.SharedKeySets() {
		ch <- prometheus.MustNewConstMetric(descJWKSFetches, prometheus.CounterValue, float64(ks.Fetches()), ks.Issuer())
		ch <- prometheus.MustNewConstMetric(descJWKSFailures, prometheus.CounterValue, float64(ks.Failures()), ks.Issuer())
		age := ks.Age()
		v := -1.0
		if age >= 0 {
			v = age.Seconds()
		}
		ch <- prometheus.MustNewConstMetric(descJWKSAge, prometheus.GaugeValue, v, ks.Issuer())
	}
	var ks apikey.Stats
	for _, v := range apikey.SharedValidators() {
		s := v.Stats()
		ks.ValidatorCalls += s.ValidatorCalls
		ks.Misses += s.Misses
		ks.NegativeHits += s.NegativeHits
		ks.StaleServed += s.StaleServed
		ks.Unavailable += s.Unavailable
		ks.TooManyFailures += s.TooManyFailures
		ks.Revocations += s.Revocations
		ks.Entries += s.Entries
		ks.SharedHits += s.SharedHits
		ks.Busy += s.Busy
		ks.InFlight += s.InFlight
	}
	for d, v := range map[*prometheus.Desc]uint64{descKeyCalls: ks.ValidatorCalls, descKeyMisses: ks.Misses,
		descKeyNegHits: ks.NegativeHits, descKeyStale: ks.StaleServed, descKeyUnavail: ks.Unavailable,
		descKeyTooMany: ks.TooManyFailures, descKeyRevoked: ks.Revocations, descKeyShared: ks.SharedHits,
		descKeyBusy: ks.Busy} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(descKeyEntries, prometheus.GaugeValue, float64(ks.Entries))
	ch <- prometheus.MustNewConstMetric(descKeyInFlight, prometheus.GaugeValue, float64(ks.InFlight))
	var redisN, denyN, fallbackN, errN uint64
	active := 0.0
	if limiters != nil {
		for _, l := range limiters() {
			s := l.Stats()
			redisN += s.RedisDecisions
			denyN += s.DenyCacheHits
			fallbackN += s.FallbackDecisions
			errN += s.RedisErrors
			if s.FallbackActive {
				active = 1
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descRLDecisions, prometheus.CounterValue, float64(redisN), "redis")
	ch <- prometheus.MustNewConstMetric(descRLDecisions, prometheus.CounterValue, float64(denyN), "deny_cache")
	ch <- prometheus.MustNewConstMetric(descRLDecisions, prometheus.CounterValue, float64(fallbackN), "fallback")
	ch <- prometheus.MustNewConstMetric(descRLErrors, prometheus.CounterValue, float64(errN))
	ch <- prometheus.MustNewConstMetric(descRLFallbackNow, prometheus.GaugeValue, active)
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// listen is the -metrics-listen flag every plugin server has.
var listen = flag.String("metrics-listen", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9542); empty: off")

// ServeFromFlag parses the command line (go-pdk's StartServer parses it
// again, harmlessly) and, when -metrics-listen is set, serves /metrics in
// the background. A plugin server with a bad address fails at start, loudly.
func ServeFromFlag() error {
	flag.Parse()
	if *listen == "" {
		return nil
	}
	_, _, err := Serve(*listen)
	return err
}

// Serve serves /metrics on addr in the background and returns the bound
// address and the function that stops it.
func Serve(addr string) (net.Addr, func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, errors.New("metrics listener: " + err.Error())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr(), srv.Close, nil
}

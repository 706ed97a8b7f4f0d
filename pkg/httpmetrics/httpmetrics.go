// Package httpmetrics is the Prometheus view of a service's HTTP traffic:
// requests by route template, method and status, and latency histograms,
// served on the service's INTERNAL listener (/metrics is never routed by
// Kong). Routes are templates ("/auth/api-keys/:id"), never raw paths, so
// the label set stays bounded whatever clients send.
//
// Gin services use the ginmetrics adapter; the core has no gin import.
package httpmetrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds one service's registry.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New returns the metrics of a service: its HTTP series (constant label
// service=<name>) plus the Go runtime and process collectors.
func New(service string) *Metrics {
	labels := prometheus.Labels{"service": service}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeguard_http_requests_total", Help: "HTTP requests by route template, method and status.",
			ConstLabels: labels,
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "edgeguard_http_request_duration_seconds", Help: "HTTP request latency by route template and method.",
			ConstLabels: labels, Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry lets a service register its own collectors (e.g. auth outcomes).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observe records one request. route must be a template or "unmatched".
// The method label is bounded by Method: a client sending random method
// names cannot create series without end.
func (m *Metrics) Observe(route, method string, status int, d time.Duration) {
	method = Method(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// knownMethods are the standard methods; any other is "_OTHER".
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "CONNECT": true, "TRACE": true}

// Method is m when it is a standard HTTP method, else "_OTHER" (as
// OpenTelemetry's semantic conventions): the bounded value for labels and
// span names.
func Method(m string) string {
	if knownMethods[m] {
		return m
	}
	return "_OTHER"
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

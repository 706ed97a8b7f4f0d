// Package auditconf is the Kong-facing `audit` record of the auth and
// rate-limit plugins (keycloak-jwt, keycloak-apikey, redis-ratelimit,
// edgeguard) and the process-wide pkg/audit emitters built from it: Kong
// creates a new plugin instance on every config change, and the emitter's
// queue and writer must outlive them.
//
// With no `audit` section (or no redis addresses) audit is off. Kong sends
// an unset `audit` as a record whose fields are all null; the plugins'
// config types decode through package kongjson, which makes that a nil
// *Options, so "non-nil" here means the user set something. The
// emitter never blocks a request: when Redis is down or the queue is full,
// events go to the plugin server's log at warn and are counted in
// edgeguard_audit_events_dropped_total.
package auditconf

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginmetrics"
	"github.com/edgeguard/edgeguard/plugins/internal/redisconf"
)

// Options is the `audit` record of a plugin's configuration.
type Options struct {
	// Redis is where the stream lives (same record as the plugins' `redis`).
	Redis redisconf.Options `json:"redis"`
	// Stream is the stream key (default edgeguard:audit; the one llm-api
	// consumes).
	Stream string `json:"stream"`
	// MaxLen caps the stream with XADD MAXLEN ~ (default 100000).
	MaxLen int `json:"max_len"`
	// QueueSize bounds the in-memory queue (default 4096).
	QueueSize int `json:"queue_size"`
}

// Set reports whether audit is configured.
func (o *Options) Set() bool { return o != nil && o.Redis.Set() }

func (o *Options) withDefaults() Options {
	c := *o
	if c.Stream == "" {
		c.Stream = audit.DefaultStream
	}
	if c.MaxLen == 0 {
		c.MaxLen = audit.DefaultMaxLen
	}
	if c.QueueSize == 0 {
		c.QueueSize = audit.DefaultQueueSize
	}
	return c
}

// Validate checks the record without I/O (the password files are read by
// Emitter). An absent record is valid (audit off); a present one needs
// redis addresses.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if !o.Redis.Set() {
		return fmt.Errorf("audit.redis.addresses: required when audit is configured")
	}
	c := o.withDefaults()
	if err := audit.ValidStream(c.Stream); err != nil {
		return fmt.Errorf("audit.stream: %w", err)
	}
	if c.MaxLen < 1000 || c.MaxLen > 100_000_000 {
		return fmt.Errorf("audit.max_len: must be 1000..100000000")
	}
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		return fmt.Errorf("audit.queue_size: must be 1..1000000")
	}
	return nil
}

// metrics are the process's audit counters, on the plugin server's
// /metrics.
var metrics = audit.NewMetrics(nil)

func init() { pluginmetrics.Registry.MustRegister(metrics.Collectors()...) }

var emitters = struct {
	sync.Mutex
	m map[string]*audit.Emitter
}{m: map[string]*audit.Emitter{}}

// Emitter returns the process-wide emitter of o (nil, nil when audit is
// off), building it on first use. Emitters are keyed by every setting, the
// passwords by a hash only; they live as long as the plugin server.
func Emitter(o *Options, log zerolog.Logger) (*audit.Emitter, error) {
	if !o.Set() {
		return nil, nil
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := o.withDefaults()
	rc, err := c.Redis.Config()
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	pw := sha256.Sum256([]byte(rc.Password + "\x00" + rc.SentinelPassword))
	key := fmt.Sprintf("%s|%x|%s|%d|%d", rc.String(), pw[:8], c.Stream, c.MaxLen, c.QueueSize)
	emitters.Lock()
	defer emitters.Unlock()
	if e := emitters.m[key]; e != nil {
		return e, nil
	}
	client, err := redisconf.Client(c.Redis)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	e, err := audit.New(audit.Config{Writer: audit.RedisWriter{Client: client, Stream: c.Stream, MaxLen: int64(c.MaxLen)},
		QueueSize: c.QueueSize, Metrics: metrics, Logger: log})
	if err != nil {
		return nil, err
	}
	emitters.m[key] = e
	return e, nil
}

// Metrics returns the process's audit counters (tests).
func Metrics() *audit.Metrics { return metrics }

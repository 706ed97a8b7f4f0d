// Package redisconn builds the Redis client every edgeguard component uses
// from one configuration: a single node, Sentinel or Cluster through
// go-redis's UniversalClient, with TLS, ACL user and password. The password
// is the caller's to load (from a file); nothing here prints it.
//
// It is not a cache or a connection registry: callers share clients.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// ErrInvalid is wrapped by every configuration error. Errors never contain
// a password (addresses are not echoed either: a misplaced URL may carry one).
var ErrInvalid = errors.New("invalid redis config")

// Defaults of Config.
const (
	DefaultDialTimeout = time.Second
	DefaultIOTimeout   = time.Second
)

// Config says how to reach Redis. The client is go-redis's
// UniversalClient: one address is a single node, several are Cluster seed
// nodes, and with MasterName they are Sentinel addresses.
type Config struct {
	// Addrs lists "host:port" addresses. Required.
	Addrs []string
	// Cluster makes a Cluster client even from a single seed address.
	// Default false (cluster only with several Addrs).
	Cluster bool
	// MasterName is the Sentinel master name; when set, Addrs are Sentinels.
	MasterName string
	// Username is the ACL user (empty: "default").
	Username string
	// Password is the password itself (the caller reads it from a file; this
	// package never loads secrets). Never printed or logged.
	Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// when they need other credentials than Redis. Never printed or logged.
	SentinelUsername string
	SentinelPassword string
	// DB is the database number, 0 by default; must be 0 for a Cluster.
	DB int
	// TLS turns TLS on (minimum TLS 1.2, system roots unless TLSCAFile).
	TLS bool
	// TLSCAFile is a PEM file of CA certificates to verify Redis with,
	// read by New. Requires TLS.
	TLSCAFile string
	// TLSServerName overrides the name verified in Redis's certificate
	// (default: the host of the address dialed). Requires TLS.
	TLSServerName string
	// PoolSize is the connection pool size per node. Default (0): go-redis's
	// default, 10 per GOMAXPROCS.
	PoolSize int
	// DialTimeout bounds connecting. Default 1s. Callers bound each command
	// with a context deadline as well.
	DialTimeout time.Duration
	// ReadTimeout bounds a read and a write. Default 1s; callers bound each command with
	// a context deadline as well.
	ReadTimeout time.Duration
}

// String describes the configuration without secrets ("password:true").
func (c Config) String() string {
	return fmt.Sprintf("{addrs:%v cluster:%t master:%q username:%q password:%t sentinel_password:%t db:%d tls:%t ca_file:%q server_name:%q pool:%d dial:%s read:%s}",
		c.Addrs, c.Cluster, c.MasterName, c.Username, c.Password != "", c.SentinelPassword != "", c.DB, c.TLS,
		c.TLSCAFile, c.TLSServerName, c.PoolSize, c.DialTimeout, c.ReadTimeout)
}

// GoString is String, so %#v cannot print the password either.
func (c Config) GoString() string { return "redisconn.Config" + c.String() }

// MarshalZerologObject logs the configuration without secrets.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	e.Strs("addrs", c.Addrs).Bool("cluster", c.Cluster).Str("master", c.MasterName).
		Str("username", c.Username).Bool("password", c.Password != "").
		Bool("sentinel_password", c.SentinelPassword != "").Int("db", c.DB).Bool("tls", c.TLS).
		Str("tls_ca_file", c.TLSCAFile).Str("tls_server_name", c.TLSServerName).Int("pool_size", c.PoolSize)
}

// WithDefaults returns c with zero timeouts at their defaults.
func (c Config) WithDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultIOTimeout
	}
	return c
}

// Validate checks c without I/O.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if len(c.Addrs) == 0 {
		return bad("redis addresses are required")
	}
	for i, a := range c.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" || strings.ContainsAny(a, "@/") {
			return bad("redis address #%d is not host:port", i+1)
		}
	}
	cluster := c.Cluster || (len(c.Addrs) > 1 && c.MasterName == "")
	if cluster && c.DB != 0 {
		return bad("redis cluster has only database 0")
	}
	if c.Cluster && c.MasterName != "" {
		return bad("redis cluster and sentinel master name are exclusive")
	}
	if c.DB < 0 {
		return bad("redis database must not be negative")
	}
	if !c.TLS && (c.TLSCAFile != "" || c.TLSServerName != "") {
		return bad("redis tls ca file and server name need tls on")
	}
	if c.PoolSize < 0 || c.DialTimeout < 0 || c.ReadTimeout < 0 {
		return bad("redis pool size and timeouts must not be negative")
	}
	return nil
}

// New builds the go-redis UniversalClient of c (defaults applied): one
// address is a single node, several are Cluster seeds, with MasterName they
// are Sentinels. Context deadlines bound every socket wait
// (ContextTimeoutEnabled) and commands are not retried (a retried script
// could apply twice; callers decide what a failure means) — but a Cluster
// client follows MOVED and ASK redirects (the command did not run there)
// and, as go-redis does, re-sends a command after a connection error while
// the caller's deadline allows (README "Redis Cluster"). A Cluster client
// also reloads its slot map as soon as a node fails (reloadOnFailure). It
// reads TLSCAFile; it does not connect.
func New(c Config) (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := c.WithDefaults()
	opts := &redis.UniversalOptions{
		Addrs:            r.Addrs,
		MasterName:       r.MasterName,
		Username:         r.Username,
		Password:         r.Password,
		SentinelUsername: r.SentinelUsername,
		SentinelPassword: r.SentinelPassword,
		DB:               r.DB,
		PoolSize:         r.PoolSize,
		DialTimeout:      r.DialTimeout,
		ReadTimeout:      r.ReadTimeout,
		WriteTimeout:     r.ReadTimeout,
		// The per-decision context deadline must bound every socket wait.
		ContextTimeoutEnabled: true,
		// No retries: a retried script could apply twice.
		MaxRetries:      -1,
		DisableIdentity: true,
	}
	if r.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLSServerName}
		if r.TLSCAFile != "" {
			pem, err := os.ReadFile(r.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("%w: read redis tls ca file: %w", ErrInvalid, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: redis tls ca file %q holds no PEM certificate", ErrInvalid, r.TLSCAFile)
			}
		}
		opts.TLSConfig = tc
	}
	if r.Cluster || (len(r.Addrs) > 1 && r.MasterName == "") {
		cc := redis.NewClusterClient(opts.Cluster())
		cc.AddHook(reloadOnFailure{cc})
		return cc, nil
	}
	return redis.NewUniversalClient(opts), nil
}

// Package redisconf is the Kong-facing Redis connection record shared by the
// plugins that use Redis (redis-ratelimit, keycloak-apikey), and the
// process-wide clients built from it: Kong creates a new plugin instance on
// every config change, and the connection pool must outlive them.
//
// Secrets are file paths (password_file): a password inline in kong.yml
// would be visible through Kong's Admin API.
package redisconf

import (
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/plugins/internal/secretfile"
)

// Options is the `redis` record of a plugin's configuration.
type Options struct {
	// Addresses: one host:port is a single node, several are Cluster seeds,
	// with sentinel_master they are Sentinels.
	Addresses            []string `json:"addresses"`
	Username             string   `json:"username"`
	PasswordFile         string   `json:"password_file"`
	Database             int      `json:"database"`
	TLS                  bool     `json:"tls"`
	TLSCAFile            string   `json:"tls_ca_file"`
	TLSServerName        string   `json:"tls_server_name"`
	SentinelMaster       string   `json:"sentinel_master"`
	SentinelUsername     string   `json:"sentinel_username"`
	SentinelPasswordFile string   `json:"sentinel_password_file"`
	Cluster              bool     `json:"cluster"`
}

// Set reports whether any address is configured.
func (o Options) Set() bool { return len(o.Addresses) > 0 }

// Config reads the password files and returns the connection config.
// Errors name the option and path, never a password.
func (o Options) Config() (redisconn.Config, error) {
	c := redisconn.Config{
		Addrs:            o.Addresses,
		Cluster:          o.Cluster,
		MasterName:       o.SentinelMaster,
		Username:         o.Username,
		SentinelUsername: o.SentinelUsername,
		DB:               o.Database,
		TLS:              o.TLS,
		TLSCAFile:        o.TLSCAFile,
		TLSServerName:    o.TLSServerName,
	}
	var err error
	if c.Password, err = secretfile.ReadSecretFile("redis.password_file", o.PasswordFile, secretfile.MinRedisPassword); err != nil {
		return c, err
	}
	if c.SentinelPassword, err = secretfile.ReadSecretFile("redis.sentinel_password_file", o.SentinelPasswordFile, secretfile.MinRedisPassword); err != nil {
		return c, err
	}
	return c.WithDefaults(), c.Validate()
}

var clients = struct {
	sync.Mutex
	m map[string]redis.UniversalClient
}{m: map[string]redis.UniversalClient{}}

// Client returns the process-wide client for o, building it on first use.
// Clients are keyed by every setting, the passwords by a hash only.
func Client(o Options) (redis.UniversalClient, error) {
	c, err := o.Config()
	if err != nil {
		return nil, err
	}
	pw := sha256.Sum256([]byte(c.Password + "\x00" + c.SentinelPassword))
	key := fmt.Sprintf("%s|%x", c.String(), pw[:8])
	clients.Lock()
	defer clients.Unlock()
	if cl := clients.m[key]; cl != nil {
		return cl, nil
	}
	cl, err := redisconn.New(c)
	if err != nil {
		return nil, err
	}
	clients.m[key] = cl
	return cl, nil
}

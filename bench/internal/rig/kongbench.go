package rig

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"strings"
	"text/template"
)

// Target is one route of the real-Kong load run (`scripts/load.sh kong`):
// its name (file names, table rows), the path on Kong's proxy, the
// credential the request carries and the label of its table row.
type Target struct {
	Name       string
	Path       string
	Credential string // "none", "jwt" (the rig's JWT) or "key" (the rig's first API key)
	Label      string
	// Events and Calls are the plugin events and PDK calls per request of
	// routes whose plugin server has no metrics (the empty plugin); the
	// others are counted by their plugin servers.
	Events, Calls float64
}

// KongBaseline is the target every ratio of the Kong run is taken against.
const KongBaseline = "kong-plain"

// KongTargets are the routes of the Kong bench config, in table order. All
// forward to the same upstream (nginx `return 200`).
var KongTargets = []Target{
	{Name: "kong-plain", Path: "/plain", Credential: "none", Label: "Kong, no plugins (baseline)"},
	{Name: "empty", Path: "/empty", Credential: "none", Label: "empty Go plugin: 1 event, 0 PDK calls (the protocol's floor)", Events: 1},
	{Name: "pdk8", Path: "/pdk8", Credential: "none", Label: "Go plugin: 1 event, 8 PDK calls (get_method)", Events: 1, Calls: 8},
	{Name: "empty-fast", Path: "/empty-fast", Credential: "none", Label: "empty plugin, one write per exchange (pbserve): 1 event, 0 PDK calls", Events: 1},
	{Name: "pdk8-fast", Path: "/pdk8-fast", Credential: "none", Label: "8 PDK calls, one write per exchange (pbserve)", Events: 1, Calls: 8},
	{Name: "eg-replay", Path: "/eg-replay", Credential: "jwt", Label: "edgeguard's 6 PDK calls and payloads replayed, no work (empty plugin)", Events: 1, Calls: 6},
	{Name: "eg-replay-wait", Path: "/eg-replay-wait", Credential: "jwt", Label: "the same replay, 150 µs asleep where edgeguard signs and asks Redis", Events: 1, Calls: 6},
	{Name: "header-guard", Path: "/header-guard", Credential: "none", Label: "header-guard alone (3 PDK calls)"},
	{Name: "lua-jwt", Path: "/lua-jwt", Credential: "jwt", Label: "Kong Lua jwt (RS256, static key)"},
	{Name: "lua-jwt-rl", Path: "/lua-jwt-rl", Credential: "jwt", Label: "Kong Lua jwt + rate-limiting (redis)"},
	{Name: "sep-jwt", Path: "/sep", Credential: "jwt", Label: "separate plugins (4 events), JWT"},
	{Name: "sep-key", Path: "/sep", Credential: "key", Label: "separate plugins (4 events), API key"},
	{Name: "eg-jwt", Path: "/chain", Credential: "jwt", Label: "edgeguard all-in-one, JWT (cached)"},
	{Name: "eg-key", Path: "/chain", Credential: "key", Label: "edgeguard all-in-one, API key (cached)"},
}

// KongTarget returns the named target.
func KongTarget(name string) (Target, bool) {
	for _, t := range KongTargets {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}

// KongBenchConfig is what the real-Kong bench config needs. Secret files are
// named by their kong.sh path (/etc/kong/secrets/<file>, copied from the
// rig's folder by `scripts/kong.sh start --secrets`).
type KongBenchConfig struct {
	UpstreamURL string // e.g. http://127.0.0.1:18000 (nginx return 200)
	Issuer      string // iss of the rig's tokens (also the Lua jwt credential's key)
	JWKSURL     string
	ValidateURL string
	RedisAddr   string // 127.0.0.1:port: Kong resolves host names itself
	// JWTPublicKeyPEM is the rig's RSA public key (PKIX PEM) for the Lua
	// jwt plugin's consumer credential — jan-server's setup: one pasted key.
	JWTPublicKeyPEM   string
	InternalTokenFile string // /etc/kong/secrets/internal_token
	EdgeKeyFile       string // /etc/kong/secrets/edge_identity.pem
}

// Validate checks every field; values go into the YAML single-quoted.
func (c KongBenchConfig) Validate() error {
	for name, v := range map[string]string{
		"upstream URL": c.UpstreamURL, "issuer": c.Issuer, "JWKS URL": c.JWKSURL, "validate URL": c.ValidateURL,
		"redis address": c.RedisAddr, "internal token file": c.InternalTokenFile, "edge key file": c.EdgeKeyFile,
	} {
		if v == "" {
			return fmt.Errorf("rig: kong bench config: %s missing", name)
		}
		if strings.ContainsAny(v, "'\n\r") {
			return fmt.Errorf("rig: kong bench config: %s has a quote or a line break", name)
		}
	}
	for _, u := range []string{c.UpstreamURL, c.Issuer, c.JWKSURL, c.ValidateURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("rig: kong bench config: %q is not an http(s) URL", u)
		}
	}
	host, port, err := net.SplitHostPort(c.RedisAddr)
	if err != nil || net.ParseIP(host) == nil || port == "" {
		return fmt.Errorf("rig: kong bench config: redis address %q is not IP:port", c.RedisAddr)
	}
	if b, _ := pem.Decode([]byte(c.JWTPublicKeyPEM)); b == nil || b.Type != "PUBLIC KEY" {
		return fmt.Errorf("rig: kong bench config: the JWT public key is not a PEM PUBLIC KEY")
	}
	return nil
}

// PublicKeyPEM returns the rig's signing key's public half as PKIX PEM.
func (r *Rig) PublicKeyPEM() string {
	der, _ := x509.MarshalPKIXPublicKey(&r.key.PublicKey) // an RSA key always marshals
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// KongBenchYML renders the real-Kong bench config: one service (the
// upstream) and one route per target. The edgeguard sections are kong.yml's
// llm-openai config with the rig's URLs and limits no run reaches (the run
// measures the checks, not refusals); the separate plugins carry the same
// sections, so /sep and /chain do the same work. The Lua route is
// jan-server's: jwt with one pasted RS256 key on a consumer, rate-limiting
// with policy redis and the same three windows.
func KongBenchYML(c KongBenchConfig) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(c.RedisAddr)
	data := struct {
		KongBenchConfig
		RedisHost, RedisPort, PEMIndented string
	}{c, host, port, indent(strings.TrimSpace(c.JWTPublicKeyPEM), "        ")}
	var b bytes.Buffer
	if err := kongBenchTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("rig: kong bench config: %w", err)
	}
	return b.Bytes(), nil
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

var kongBenchTemplate = template.Must(template.New("kong-bench.yml").Parse(`# Generated by bench/cmd/loadrig for scripts/load.sh kong (bench/README.md). Not for production.
_format_version: "3.0"
consumers:
- username: bench-lua
  jwt_secrets:
  - key: '{{.Issuer}}'
    algorithm: RS256
    rsa_public_key: |
{{.PEMIndented}}
services:
- name: upstream
  url: '{{.UpstreamURL}}/'
  routes:
  - name: plain
    paths: [/plain]
    strip_path: true
  - name: empty
    paths: [/empty]
    strip_path: true
    plugins:
    - name: emptyplugin
  - name: pdk8
    paths: [/pdk8]
    strip_path: true
    plugins:
    - name: emptyplugin
      config: {calls: 8}
  - name: empty-fast
    paths: [/empty-fast]
    strip_path: true
    plugins:
    - name: emptyplugin-fast
  - name: pdk8-fast
    paths: [/pdk8-fast]
    strip_path: true
    plugins:
    - name: emptyplugin-fast
      config: {calls: 8}
  - name: eg-replay
    paths: [/eg-replay]
    strip_path: true
    plugins:
    - name: emptyplugin
      config: {replay: true}
  - name: eg-replay-wait
    paths: [/eg-replay-wait]
    strip_path: true
    plugins:
    - name: emptyplugin
      config: {replay: true, wait_us: 150}
  - name: header-guard
    paths: [/header-guard]
    strip_path: true
    plugins:
    - name: header-guard
      config: {max_headers: 100, max_header_bytes: 32768}
  - name: lua-jwt
    paths: [/lua-jwt]
    strip_path: true
    plugins:
    - name: jwt
      config: {claims_to_verify: [exp], key_claim_name: iss}
  - name: lua-jwt-rl
    paths: [/lua-jwt-rl]
    strip_path: true
    plugins:
    - name: jwt
      config: {claims_to_verify: [exp], key_claim_name: iss}
    - name: rate-limiting
      config:
        second: 1000000
        minute: 60000000
        hour: 1000000000
        limit_by: consumer
        policy: redis
        redis: {host: '{{.RedisHost}}', port: {{.RedisPort}}}
  - name: sep
    paths: [/sep]
    strip_path: true
    plugins:
    - name: header-guard
      config: {max_headers: 100, max_header_bytes: 32768}
    - name: keycloak-jwt
      config:
        issuers:
        - issuer: '{{.Issuer}}'
          jwks_url: '{{.JWKSURL}}'
        audiences: [jan-api]
        allowed_azp: [jan-cli, jan-web, guest-login]
        credential_optional: true
        upstream_name: llm-api
        edge_signing_key_file: '{{.EdgeKeyFile}}'
    - name: keycloak-apikey
      config:
        validate_url: '{{.ValidateURL}}'
        internal_token_file: '{{.InternalTokenFile}}'
        redis:
          addresses: ['{{.RedisAddr}}']
        upstream_name: llm-api
        edge_signing_key_file: '{{.EdgeKeyFile}}'
    - name: redis-ratelimit
      config:
        second: 1000000
        minute: 60000000
        hour: 1000000000
        redis:
          addresses: ['{{.RedisAddr}}']
        on_redis_error: local
  - name: chain
    paths: [/chain]
    strip_path: true
    plugins:
    - name: edgeguard
      config:
        header_guard: {max_headers: 100, max_header_bytes: 32768}
        jwt:
          issuers:
          - issuer: '{{.Issuer}}'
            jwks_url: '{{.JWKSURL}}'
          audiences: [jan-api]
          allowed_azp: [jan-cli, jan-web, guest-login]
          credential_optional: true
          upstream_name: llm-api
          edge_signing_key_file: '{{.EdgeKeyFile}}'
        apikey:
          validate_url: '{{.ValidateURL}}'
          internal_token_file: '{{.InternalTokenFile}}'
          redis:
            addresses: ['{{.RedisAddr}}']
          upstream_name: llm-api
          edge_signing_key_file: '{{.EdgeKeyFile}}'
        ratelimit:
          second: 1000000
          minute: 60000000
          hour: 1000000000
          redis:
            addresses: ['{{.RedisAddr}}']
          on_redis_error: local
`))

package config_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
)

const (
	pepper      = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"
	token       = "9c8b7a695847362514f3e2d1c0b9a8978695a4b3c2d1e0f"
	kcSecret    = "kc-7d9f3a2b1c8e4f6a"
	guestSecret = "gl-4a1b9c7d2e8f3a6b"
	redisPw     = "r3d1s-7d9f3a2b1c8e4f6a"
)

// edgeJWKS is a public JWKS of two Ed25519 keys (a rotation).
var edgeJWKS = func() string {
	k1, _, _ := ed25519.GenerateKey(rand.Reader)
	k2, _, _ := ed25519.GenerateKey(rand.Reader)
	b, err := edgeid.PublicJWKS(k1, k2)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// env is a strict, complete configuration with secrets in files.
func env() (map[string]string, map[string]string) {
	return map[string]string{
			"DATABASE_URL_FILE":              "/run/secrets/db",
			"REDIS_ADDR":                     "redis:6379",
			"REDIS_PASSWORD_FILE":            "/run/secrets/redis",
			"KEYCLOAK_URL":                   "http://keycloak:8080",
			"KEYCLOAK_CLIENT_SECRET_FILE":    "/run/secrets/kc",
			"AUTH_ISSUER":                    "https://gw.example/realms/jan",
			"API_KEY_PEPPER_FILE":            "/run/secrets/pepper",
			"INTERNAL_TOKEN_FILE":            "/run/secrets/internal",
			"EDGE_IDENTITY_JWKS_FILE":        "/run/edge/jwks.json",
			"GUEST_LOGIN_CLIENT_SECRET_FILE": "/run/secrets/guest",
		}, map[string]string{
			"/run/secrets/db":       "postgres://llm:Xk29vLq8@db:5432/llm?sslmode=disable\n",
			"/run/secrets/redis":    redisPw + "\n",
			"/run/secrets/kc":       kcSecret,
			"/run/secrets/pepper":   pepper + "\n",
			"/run/secrets/internal": token,
			"/run/secrets/guest":    guestSecret + "\n",
			"/run/edge/jwks.json":   edgeJWKS,
		}
}

// load reads vars and files; the public listener's mTLS variables and
// files (mtlstest.ConfigFiles) are added unless vars sets a TLS_* variable
// itself (to "" for unset).
func load(vars, files map[string]string) (*config.Config, error) {
	tlsVars, tlsFiles := mtlstest.ConfigFiles()
	return config.Load(func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		return tlsVars[k]
	}, func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		if v, ok := tlsFiles[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	})
}

func TestStrictConfigLoadsWithDefaults(t *testing.T) {
	vars, files := env()
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Strict || !c.Auth.Enabled || c.ListenAddr != ":8080" || c.InternalListenAddr != ":8081" || c.MaxKeysPerUser != 10 ||
		c.KeycloakRealm != "jan" || c.KeycloakClientID != "llm-api" || strings.Join(c.Auth.Audience, ",") != "jan-api" ||
		string(c.Pepper) != pepper || string(c.InternalToken.Get()) != token || c.KeyEnv != "live" || c.ValidateEmail ||
		c.KeycloakCacheTTL.Seconds() != 30 || len(c.TrustedProxies) != 0 {
		t.Fatalf("config %+v", c)
	}
	if c.Auth.ServiceName != "llm-api" || !c.Auth.AcceptJWT || string(c.Auth.EdgeIdentityJWKS) != edgeJWKS ||
		!c.GuestLoginEnabled || c.GuestLoginClientID != "guest-login" || string(c.GuestLoginClientSecret) != guestSecret ||
		c.GuestMaxPerHour != 1000 || c.GuestTTL != 24*time.Hour || c.GuestCleanupInterval != 10*time.Minute ||
		len(c.GuestLimitPerIP) != 1 || c.GuestLimitPerIP[0].Rate != 5 || c.GuestLimitPerIP[0].Period != time.Hour ||
		len(c.GuestSessionLimitPerIP) != 1 || c.GuestSessionLimitPerIP[0].Rate != 60 || c.GuestSessionLimitPerIP[0].Period != time.Minute {
		t.Fatalf("edge identity / guest config %+v", c)
	}
}

func TestEdgeIdentityAndGuestSettings(t *testing.T) {
	vars, files := env()
	vars["SERVICE_NAME"] = "llm-api-canary"
	vars["AUTH_ACCEPT_JWT"] = "false"
	delete(vars, "AUTH_ISSUER") // not needed without JWTs
	vars["GUEST_LOGIN_LIMIT_PER_IP"] = "2/min, 10/h"
	vars["GUEST_MAX_PER_HOUR"] = "50"
	vars["GUEST_TTL"] = "2h"
	vars["GUEST_CLEANUP_INTERVAL"] = "30s"
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.ServiceName != "llm-api-canary" || c.Auth.AcceptJWT || len(c.GuestLimitPerIP) != 2 || c.GuestMaxPerHour != 50 ||
		c.GuestTTL != 2*time.Hour || c.GuestCleanupInterval != 30*time.Second {
		t.Fatalf("%+v", c)
	}
	// guest login off: no client secret needed, even in strict mode
	vars, files = env()
	vars["GUEST_LOGIN_ENABLED"] = "false"
	delete(vars, "GUEST_LOGIN_CLIENT_SECRET_FILE")
	if c, err := load(vars, files); err != nil || c.GuestLoginEnabled || c.GuestLoginClientSecret != nil {
		t.Fatalf("guest login off: %+v %v", c, err)
	}
}

// Every refusal is one line that names the variable and never the secret.
func TestStrictModeRefusesBadSecretsNamingTheVariable(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(v, f map[string]string)
		varName string
	}{
		{"missing pepper", func(v, f map[string]string) { delete(v, "API_KEY_PEPPER_FILE") }, "API_KEY_PEPPER_FILE"},
		{"short pepper", func(v, f map[string]string) { f["/run/secrets/pepper"] = "short-pepper" }, "API_KEY_PEPPER_FILE"},
		{"unreadable pepper", func(v, f map[string]string) { v["API_KEY_PEPPER_FILE"] = "/nope" }, "API_KEY_PEPPER_FILE"},
		{"empty pepper file", func(v, f map[string]string) { f["/run/secrets/pepper"] = "\n" }, "API_KEY_PEPPER_FILE"},
		{"placeholder pepper", func(v, f map[string]string) {
			f["/run/secrets/pepper"] = "changeme-changeme-changeme-changeme-changeme"
		}, "API_KEY_PEPPER_FILE"},
		{"repeated-character pepper", func(v, f map[string]string) { f["/run/secrets/pepper"] = strings.Repeat("a", 40) }, "API_KEY_PEPPER_FILE"},
		{"inline pepper", func(v, f map[string]string) {
			delete(v, "API_KEY_PEPPER_FILE")
			v["API_KEY_PEPPER"] = pepper
		}, "API_KEY_PEPPER"},
		{"previous pepper equals current", func(v, f map[string]string) { v["API_KEY_PEPPER_PREVIOUS_FILE"] = "/run/secrets/pepper" }, "API_KEY_PEPPER_PREVIOUS_FILE"},
		{"missing internal token", func(v, f map[string]string) { delete(v, "INTERNAL_TOKEN_FILE") }, "INTERNAL_TOKEN_FILE"},
		{"short internal token", func(v, f map[string]string) { f["/run/secrets/internal"] = "tiny" }, "INTERNAL_TOKEN_FILE"},
		{"missing client secret", func(v, f map[string]string) { delete(v, "KEYCLOAK_CLIENT_SECRET_FILE") }, "KEYCLOAK_CLIENT_SECRET_FILE"},
		{"missing redis password", func(v, f map[string]string) { delete(v, "REDIS_PASSWORD_FILE") }, "REDIS_PASSWORD_FILE"},
		{"missing redis", func(v, f map[string]string) { delete(v, "REDIS_ADDR") }, "REDIS_ADDR"},
		{"missing database", func(v, f map[string]string) { delete(v, "DATABASE_URL_FILE") }, "DATABASE_URL_FILE"},
		{"default database password", func(v, f map[string]string) {
			f["/run/secrets/db"] = "postgres://postgres:postgres@db/llm"
		}, "DATABASE_URL"},
		{"auth disabled", func(v, f map[string]string) { v["AUTH_ENABLED"] = "false" }, "AUTH_ENABLED"},
		{"no issuer", func(v, f map[string]string) { delete(v, "AUTH_ISSUER") }, "AUTH_ISSUER"},
		{"issuer not a URL", func(v, f map[string]string) { v["AUTH_ISSUER"] = "jan" }, "AUTH_ISSUER"},
		{"no keycloak", func(v, f map[string]string) { delete(v, "KEYCLOAK_URL") }, "KEYCLOAK_URL"},
		{"trust everything", func(v, f map[string]string) { v["TRUSTED_PROXIES"] = "10.0.0.1, 0.0.0.0/0" }, "TRUSTED_PROXIES"},
		{"same listeners", func(v, f map[string]string) { v["INTERNAL_LISTEN_ADDR"] = ":8080" }, "INTERNAL_LISTEN_ADDR"},
		{"bad max per user", func(v, f map[string]string) { v["API_KEY_MAX_PER_USER"] = "0" }, "API_KEY_MAX_PER_USER"},
		{"bad bool", func(v, f map[string]string) { v["STRICT"] = "maybe" }, "STRICT"},
		{"bad log level", func(v, f map[string]string) { v["LOG_LEVEL"] = "loud" }, "LOG_LEVEL"},
		{"bad cache ttl", func(v, f map[string]string) { v["KEYCLOAK_CACHE_SECONDS"] = "61" }, "KEYCLOAK_CACHE_SECONDS"},
		{"bad key env", func(v, f map[string]string) { v["API_KEY_ENV"] = "prod" }, "API_KEY_ENV"},
		{"no edge jwks in strict mode", func(v, f map[string]string) { delete(v, "EDGE_IDENTITY_JWKS_FILE") }, "EDGE_IDENTITY_JWKS_FILE"},
		{"unreadable edge jwks", func(v, f map[string]string) { v["EDGE_IDENTITY_JWKS_FILE"] = "/nope" }, "EDGE_IDENTITY_JWKS_FILE"},
		{"edge jwks not a jwks", func(v, f map[string]string) { f["/run/edge/jwks.json"] = `{"keys":[]}x` }, "EDGE_IDENTITY_JWKS_FILE"},
		{"edge jwks with a private key file", func(v, f map[string]string) { f["/run/edge/jwks.json"] = "-----BEGIN PRIVATE KEY-----" }, "EDGE_IDENTITY_JWKS_FILE"},
		{"bad service name", func(v, f map[string]string) { v["SERVICE_NAME"] = "LLM API" }, "SERVICE_NAME"},
		{"bad accept jwt", func(v, f map[string]string) { v["AUTH_ACCEPT_JWT"] = "sometimes" }, "AUTH_ACCEPT_JWT"},
		{"missing guest-login secret", func(v, f map[string]string) { delete(v, "GUEST_LOGIN_CLIENT_SECRET_FILE") }, "GUEST_LOGIN_CLIENT_SECRET_FILE"},
		{"short guest-login secret", func(v, f map[string]string) { f["/run/secrets/guest"] = "tiny" }, "GUEST_LOGIN_CLIENT_SECRET_FILE"},
		{"placeholder guest-login secret", func(v, f map[string]string) { f["/run/secrets/guest"] = "changeme-changeme-1" }, "GUEST_LOGIN_CLIENT_SECRET_FILE"},
		{"inline guest-login secret", func(v, f map[string]string) {
			delete(v, "GUEST_LOGIN_CLIENT_SECRET_FILE")
			v["GUEST_LOGIN_CLIENT_SECRET"] = guestSecret
		}, "GUEST_LOGIN_CLIENT_SECRET"},
		{"bad guest client id", func(v, f map[string]string) { v["GUEST_LOGIN_CLIENT_ID"] = "guest login" }, "GUEST_LOGIN_CLIENT_ID"},
		{"bad per-ip limit", func(v, f map[string]string) { v["GUEST_LOGIN_LIMIT_PER_IP"] = "lots" }, "GUEST_LOGIN_LIMIT_PER_IP"},
		{"zero per-ip limit", func(v, f map[string]string) { v["GUEST_LOGIN_LIMIT_PER_IP"] = "0/h" }, "GUEST_LOGIN_LIMIT_PER_IP"},
		{"bad session limit", func(v, f map[string]string) { v["GUEST_SESSION_LIMIT_PER_IP"] = "5/fortnight" }, "GUEST_SESSION_LIMIT_PER_IP"},
		{"bad global ceiling", func(v, f map[string]string) { v["GUEST_MAX_PER_HOUR"] = "0" }, "GUEST_MAX_PER_HOUR"},
		{"guest ttl too short", func(v, f map[string]string) { v["GUEST_TTL"] = "1m" }, "GUEST_TTL"},
		{"guest ttl not a duration", func(v, f map[string]string) { v["GUEST_TTL"] = "1 day" }, "GUEST_TTL"},
		{"cleanup interval too short", func(v, f map[string]string) { v["GUEST_CLEANUP_INTERVAL"] = "1s" }, "GUEST_CLEANUP_INTERVAL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, f := env()
			c.mutate(v, f)
			_, err := load(v, f)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, c.varName+":") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q does not start with %s:", msg, c.varName)
			}
			for _, s := range []string{pepper, token, kcSecret, guestSecret, redisPw, "Xk29vLq8"} {
				if strings.Contains(msg, s) {
					t.Fatalf("error carries a secret: %q", msg)
				}
			}
		})
	}
}

// faultVars are the variables named by err's faults, one per line.
func faultVars(err error) []string {
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		name, _, _ := strings.Cut(line, ":")
		out = append(out, name)
	}
	return out
}

// A start with several faults names them all at once, one line each, in
// the order of the variables — never a secret.
func TestEveryFaultIsReportedAtOnce(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(v, f map[string]string)
		want   []string
	}{
		{"nothing set", func(v, f map[string]string) { clear(v) }, []string{
			"DATABASE_URL_FILE", "REDIS_ADDR", "KEYCLOAK_URL", "KEYCLOAK_CLIENT_SECRET_FILE", "AUTH_ISSUER",
			"EDGE_IDENTITY_JWKS_FILE", "API_KEY_PEPPER_FILE", "INTERNAL_TOKEN_FILE", "GUEST_LOGIN_CLIENT_SECRET_FILE"}},
		{"bad values everywhere", func(v, f map[string]string) {
			v["LOG_LEVEL"] = "loud"
			v["AUDIT_STREAM_MAXLEN"] = "1"
			f["/run/secrets/db"] = "postgres://llm:postgres@db/llm"
			f["/run/secrets/pepper"] = pepper[:20]
			v["INTERNAL_TOKEN_PREVIOUS_FILE"] = "/run/secrets/internal"
			v["API_KEY_MAX_EXPIRES_DAYS"] = "30"
			v["API_KEY_ENV"] = "prod"
			v["GUEST_TTL"] = "1m"
			v["LLM_UPSTREAM_URL"] = "http://user:" + redisPw + "@vllm/v1"
			v["LLM_UPSTREAM_HEADER_TIMEOUT"] = "3h"
		}, []string{"LOG_LEVEL", "DATABASE_URL", "AUDIT_STREAM_MAXLEN", "API_KEY_PEPPER_FILE", "INTERNAL_TOKEN_PREVIOUS_FILE",
			"API_KEY_DEFAULT_EXPIRES_DAYS", "API_KEY_ENV", "GUEST_TTL", "LLM_UPSTREAM_URL", "LLM_UPSTREAM_HEADER_TIMEOUT", "LLM_BUDGETS_FILE"}},
		{"the public listener without its TLS files, with other faults", func(v, f map[string]string) {
			v["TLS_CERT_FILE"], v["TLS_KEY_FILE"], v["TLS_CLIENT_CA_FILE"] = "", "", ""
			v["TLS_CLIENT_IDENTITY"] = "*.edge"
			v["LOG_LEVEL"] = "loud"
			f["/run/secrets/pepper"] = pepper[:20]
		}, []string{"LOG_LEVEL", "TLS_CLIENT_IDENTITY", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "API_KEY_PEPPER_FILE"}},
		{"plain HTTP asked for in strict mode", func(v, f map[string]string) { v["INSECURE_PLAIN_HTTP"] = "true" },
			[]string{"INSECURE_PLAIN_HTTP"}},
		{"an unreadable value is one fault, not a cascade", func(v, f map[string]string) {
			v["API_KEY_MAX_EXPIRES_DAYS"] = "a year"
			v["LLM_UPSTREAM_TIMEOUT"] = "soon"
			v["STRICT"] = "maybe"
		}, []string{"STRICT", "API_KEY_MAX_EXPIRES_DAYS", "LLM_UPSTREAM_TIMEOUT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, f := env()
			c.mutate(v, f)
			_, err := load(v, f)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := faultVars(err); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("faults %q\nwant %q\n%v", got, c.want, err)
			}
			for _, s := range []string{pepper, pepper[:20], token, kcSecret, guestSecret, redisPw, "Xk29vLq8"} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error carries a secret: %q", err)
				}
			}
		})
	}
}

func TestDevModeAcceptsInlineSecretsAndAuthOff(t *testing.T) {
	c, err := load(map[string]string{
		"STRICT":                 "false",
		"INSECURE_PLAIN_HTTP":    "true",
		"TLS_CERT_FILE":          "",
		"DATABASE_URL":           "postgres://u:p@localhost/db",
		"KEYCLOAK_URL":           "http://localhost:8080",
		"KEYCLOAK_CLIENT_SECRET": "dev",
		"AUTH_ENABLED":           "false",
		"API_KEY_PEPPER":         pepper,
		"INTERNAL_TOKEN":         "dev-token",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Strict || c.Auth.Enabled || c.RedisAddr != "" || c.GuestLoginClientSecret != nil || !c.GuestLoginEnabled || !c.TLS.Plain {
		t.Fatalf("%+v", c)
	}
	// dev mode with auth on and no edge JWKS: JWTs only; refusing JWTs too
	// would accept nothing
	dev := map[string]string{"STRICT": "false", "DATABASE_URL": "postgres://u:p@h/db", "KEYCLOAK_URL": "http://k",
		"KEYCLOAK_CLIENT_SECRET": "dev", "AUTH_ISSUER": "http://k/realms/jan", "API_KEY_PEPPER": pepper, "INTERNAL_TOKEN": "dev"}
	if c, err := load(dev, nil); err != nil || c.Auth.EdgeIdentityJWKS != nil || !c.Auth.AcceptJWT {
		t.Fatalf("dev without edge jwks: %+v %v", c, err)
	}
	dev["AUTH_ACCEPT_JWT"] = "false"
	if _, err := load(dev, nil); err == nil || !strings.HasPrefix(err.Error(), "EDGE_IDENTITY_JWKS_FILE:") {
		t.Fatalf("nothing accepted: %v", err)
	}
	// the pepper minimum holds even in dev mode
	_, err = load(map[string]string{"STRICT": "false", "DATABASE_URL": "postgres://u:p@h/db", "KEYCLOAK_URL": "http://k",
		"KEYCLOAK_CLIENT_SECRET": "dev", "AUTH_ENABLED": "false", "API_KEY_PEPPER": "short", "INTERNAL_TOKEN": "dev"}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "API_KEY_PEPPER_FILE:") {
		t.Fatalf("short pepper in dev: %v", err)
	}
}

// REDIS_CLUSTER makes one REDIS_ADDR a Cluster seed (the deployments name
// every node redis:6379); a list is a Cluster either way. A value that is
// not a boolean, or true without an address, is a fault naming it.
func TestRedisClusterSetting(t *testing.T) {
	cases := []struct {
		name      string
		vars      map[string]string // set over env(); "" deletes
		want      bool
		wantFault string
	}{
		{"unset: a single node", nil, false, ""},
		{"true", map[string]string{"REDIS_CLUSTER": "true"}, true, ""},
		{"false", map[string]string{"REDIS_CLUSTER": "false"}, false, ""},
		{"1", map[string]string{"REDIS_CLUSTER": "1"}, true, ""},
		{"a list of nodes needs no flag", map[string]string{"REDIS_ADDR": "redis-1:6379,redis-2:6379"}, false, ""},
		{"not a boolean", map[string]string{"REDIS_CLUSTER": "yes"}, false, "REDIS_CLUSTER"},
		{"true without REDIS_ADDR (dev mode)", map[string]string{"STRICT": "false", "REDIS_ADDR": "", "REDIS_PASSWORD_FILE": "",
			"REDIS_CLUSTER": "true"}, false, "REDIS_CLUSTER"},
		{"strict without REDIS_ADDR: that is the fault", map[string]string{"REDIS_ADDR": "", "REDIS_CLUSTER": "true"}, false, "REDIS_ADDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vars, files := env()
			for k, v := range c.vars {
				if v == "" {
					delete(vars, k)
				} else {
					vars[k] = v
				}
			}
			got, err := load(vars, files)
			if c.wantFault != "" {
				if err == nil {
					t.Fatalf("accepted, want the fault %s", c.wantFault)
				}
				if strings.Join(faultVars(err), ",") != c.wantFault || strings.Contains(err.Error(), redisPw) {
					t.Fatalf("faults %v, want only %s: %v", faultVars(err), c.wantFault, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.RedisCluster != c.want {
				t.Fatalf("RedisCluster %v, want %v", got.RedisCluster, c.want)
			}
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	vars, files := env()
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.Pepper.String(), c.InternalToken.GoString(), c.InternalToken.String(), c.DatabaseURL.String()} {
		if strings.Contains(s, pepper) || strings.Contains(s, token) || strings.Contains(s, "Xk29vLq8") {
			t.Fatal("secret printed")
		}
	}
	if id := config.PepperID(c.Pepper); len(id) != 13 || strings.Contains(pepper, id[1:]) {
		t.Fatalf("pepper id %q", id)
	}
	if config.PepperID([]byte(pepper)) == config.PepperID([]byte(pepper+"x")) {
		t.Fatal("pepper ids collide")
	}
}

const budgetsFile = `default_max_completion_tokens: 512
roles:
  guest: {tokens_per_minute: 2000, tokens_per_day: 20000, models: [stub-model]}
  user:  {tokens_per_minute: 20000, tokens_per_day: 1000000}
prices:
  stub-model: {prompt_usd_per_million: 0.5, completion_usd_per_million: 1.5}
`

// TestBudgetsSettings: LLM_BUDGETS_FILE is required in strict mode with a
// model server (never unmetered), parsed at start with every fault
// reported, and needs Redis; LLM_BUDGET_ON_REDIS_ERROR is deny or allow.
func TestBudgetsSettings(t *testing.T) {
	vars, files := env()
	vars["LLM_UPSTREAM_URL"] = "http://vllm:8000/v1"
	if _, err := load(vars, files); err == nil || !strings.Contains(err.Error(), "LLM_BUDGETS_FILE: required in strict mode") {
		t.Fatalf("strict without budgets: %v", err)
	}
	vars["LLM_BUDGETS_FILE"] = "/etc/llm-api/budgets.yaml"
	files["/etc/llm-api/budgets.yaml"] = budgetsFile
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.Budgets == nil || c.Budgets.DefaultMaxCompletionTokens != 512 || c.LLMBudgetOnRedisError != "deny" {
		t.Fatalf("%+v %q", c.Budgets, c.LLMBudgetOnRedisError)
	}
	files["/etc/llm-api/budgets.yaml"] = "default_max_completion_tokens: 0\nroles: {user: {tokens_per_day: -1}}\n"
	_, err = load(vars, files)
	if err == nil || !strings.Contains(err.Error(), "LLM_BUDGETS_FILE: invalid budgets file: default_max_completion_tokens") ||
		!strings.Contains(err.Error(), "roles.user.tokens_per_day") {
		t.Fatalf("a bad file: %v", err)
	}
	files["/etc/llm-api/budgets.yaml"] = budgetsFile
	vars["LLM_BUDGET_ON_REDIS_ERROR"] = "maybe"
	if _, err := load(vars, files); err == nil || !strings.Contains(err.Error(), "LLM_BUDGET_ON_REDIS_ERROR") {
		t.Fatalf("%v", err)
	}
	vars["LLM_BUDGET_ON_REDIS_ERROR"] = "allow"
	if c, err := load(vars, files); err != nil || c.LLMBudgetOnRedisError != "allow" {
		t.Fatalf("%v", err)
	}
	delete(vars, "LLM_BUDGETS_FILE")
	vars["STRICT"] = "false"
	if c, err := load(vars, files); err != nil || c.Budgets != nil {
		t.Fatalf("not strict, no file: %v", err)
	}
	vars["LLM_BUDGETS_FILE"] = "/nowhere"
	if _, err := load(vars, files); err == nil || !strings.Contains(err.Error(), "LLM_BUDGETS_FILE: cannot be read") {
		t.Fatalf("%v", err)
	}
}

func TestModelUpstreamSettings(t *testing.T) {
	vars, files := env()
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.LLMUpstreamURL != "" || c.LLMUpstreamAPIKey != nil || c.LLMUpstreamTimeout != 120*time.Second ||
		c.LLMUpstreamHeaderTimeout != 120*time.Second || c.LLMMaxBodyBytes != 10<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	vars["LLM_UPSTREAM_URL"] = "http://vllm:8000/v1"
	vars["LLM_BUDGETS_FILE"] = "/etc/llm-api/budgets.yaml"
	files["/etc/llm-api/budgets.yaml"] = budgetsFile
	vars["LLM_UPSTREAM_API_KEY_FILE"] = "/run/secrets/vllm"
	files["/run/secrets/vllm"] = "vllm-k3y-9a8b7c6d\n"
	vars["LLM_UPSTREAM_TIMEOUT"] = "5m"
	vars["LLM_UPSTREAM_HEADER_TIMEOUT"] = "30s"
	vars["LLM_MAX_BODY_BYTES"] = "2048"
	if c, err = load(vars, files); err != nil {
		t.Fatal(err)
	}
	if c.LLMUpstreamURL != "http://vllm:8000/v1" || string(c.LLMUpstreamAPIKey) != "vllm-k3y-9a8b7c6d" ||
		c.LLMUpstreamTimeout != 5*time.Minute || c.LLMUpstreamHeaderTimeout != 30*time.Second || c.LLMMaxBodyBytes != 2048 {
		t.Fatalf("set: %+v", c)
	}
	bad := map[string]string{
		"LLM_UPSTREAM_URL":            "http://user:pw@vllm/v1",
		"LLM_UPSTREAM_TIMEOUT":        "0s",
		"LLM_UPSTREAM_HEADER_TIMEOUT": "10m",
		"LLM_MAX_BODY_BYTES":          "1",
		"LLM_UPSTREAM_API_KEY":        "inline-key-in-strict-mode",
	}
	for name, v := range bad {
		t.Run(name, func(t *testing.T) {
			vars, files := env()
			vars[name] = v
			_, err := load(vars, files)
			if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "pw@") {
				t.Fatalf("%s=%q: %v", name, v, err)
			}
		})
	}
}

func init() { testenv.RecordSecret(pepper) } // the run's secret sweep (scripts/test.sh)

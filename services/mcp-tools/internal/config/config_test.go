package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
	"io/fs"
	"strings"
	"testing"
	"time"
)

// edgeJWKS is a public JWKS of one Ed25519 key.
var edgeJWKS = func() string {
	k, _, _ := ed25519.GenerateKey(rand.Reader)
	b, err := edgeid.PublicJWKS(k)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

var files = map[string]string{
	"/run/secrets/edge.jwks":      edgeJWKS,
	"/run/secrets/empty":          "\n",
	"/run/secrets/sandbox-token":  "Zq3v9WmX2kLp8RtY5nB7cD1f\n",
	"/run/secrets/sandbox-short":  "abc",
	"/run/secrets/sandbox-change": "changeme-changeme-changeme",
}

// load reads env and files; the public listener's mTLS variables and files
// (mtlstest.ConfigFiles) are added unless env sets a TLS_* variable itself
// (to "" for unset).
func load(env map[string]string) (*Config, error) {
	tlsVars, tlsFiles := mtlstest.ConfigFiles()
	return Load(func(k string) string {
		if v, ok := env[k]; ok {
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

func base(kv ...string) map[string]string {
	env := map[string]string{"EDGE_IDENTITY_JWKS_FILE": "/run/secrets/edge.jwks"}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func TestDefaults(t *testing.T) {
	c, err := load(base())
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(true, ":8080", ":8081", "mcp-tools", false, []string{"jan-api"}, int64(256<<10), 60*time.Second,
		64<<10, 10*time.Second, "", 30*time.Second, 64<<10, true, 10*time.Minute, 1000, 10)
	got := fmt.Sprint(c.Strict, c.ListenAddr, c.InternalListenAddr, c.Auth.ServiceName, c.Auth.AcceptJWT, c.Auth.Audience, c.MaxBodyBytes,
		c.ToolTimeout, c.FetchMaxBytes, c.FetchTimeout, c.SandboxURL, c.SandboxTimeout, c.SandboxMaxCodeBytes,
		c.RequireApproval, c.ApprovalTTL, c.ApprovalMaxPending, c.ApprovalMaxPendingUser)
	if got != want {
		t.Fatalf("defaults\n got %s\nwant %s", got, want)
	}
	if string(c.Auth.EdgeIdentityJWKS) != files["/run/secrets/edge.jwks"] || c.SandboxToken != nil {
		t.Fatalf("files: %q %v", c.Auth.EdgeIdentityJWKS, c.SandboxToken)
	}
}

func TestJWTOnlyIsAValidSetUp(t *testing.T) {
	c, err := load(map[string]string{"AUTH_ACCEPT_JWT": "true", "AUTH_ISSUER": "https://id.example/realms/jan",
		"AUTH_JWKS_URL": "http://keycloak:8080/realms/jan/protocol/openid-connect/certs", "AUTH_AUDIENCE": "jan-api, other"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.EdgeIdentityJWKS != nil || !c.Auth.AcceptJWT || len(c.Auth.Audience) != 2 {
		t.Fatalf("%+v", c)
	}
}

func TestSandboxTokenFromAFile(t *testing.T) {
	c, err := load(base("SANDBOX_URL", "http://sandbox:8080", "SANDBOX_TOKEN_FILE", "/run/secrets/sandbox-token"))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.SandboxToken) != "Zq3v9WmX2kLp8RtY5nB7cD1f" {
		t.Fatal("token not read or not trimmed")
	}
	if s := fmt.Sprintf("%v %+v %#v %s", c.SandboxToken, c.SandboxToken, c.SandboxToken, c.SandboxToken); strings.Contains(s, "Zq3v") {
		t.Fatalf("the secret printed: %s", s)
	}
	// dev mode: inline accepted
	c, err = load(base("STRICT", "false", "SANDBOX_TOKEN", "short"))
	if err != nil || string(c.SandboxToken) != "short" {
		t.Fatalf("inline in dev: %v", err)
	}
}

func TestBadConfigurationIsRefusedWithTheVariableName(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT"},
		{map[string]string{"STRICT": "false"}, "EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT"},
		{map[string]string{"EDGE_IDENTITY_JWKS_FILE": "/nope"}, "EDGE_IDENTITY_JWKS_FILE: cannot read /nope"},
		{map[string]string{"EDGE_IDENTITY_JWKS_FILE": "/run/secrets/empty"}, "EDGE_IDENTITY_JWKS_FILE: /run/secrets/empty is empty"},
		{map[string]string{"AUTH_ACCEPT_JWT": "true"}, "AUTH_ISSUER: required when AUTH_ACCEPT_JWT is true"},
		{map[string]string{"AUTH_ACCEPT_JWT": "yes please"}, "AUTH_ACCEPT_JWT: "},
		{map[string]string{"AUTH_ACCEPT_JWT": "true", "AUTH_ISSUER": "id.example"}, "AUTH_ISSUER: not an absolute http(s) URL"},
		{map[string]string{"AUTH_ACCEPT_JWT": "true", "AUTH_ISSUER": "https://id.example", "AUTH_JWKS_URL": "https://u:p@x/"}, "AUTH_JWKS_URL: must not carry"},
		{base("STRICT", "maybe"), "STRICT: "},
		{base("LISTEN_ADDR", ":9000", "INTERNAL_LISTEN_ADDR", ":9000"), "INTERNAL_LISTEN_ADDR: must differ"},
		{base("SERVICE_NAME", "MCP Tools"), "SERVICE_NAME: "},
		{base("EDGE_IDENTITY_JWKS_FILE", "/run/secrets/sandbox-short"), "EDGE_IDENTITY_JWKS_FILE: /run/secrets/sandbox-short is not a JWKS"},
		{base("TRUSTED_PROXIES", "10.0.0.1,0.0.0.0/0"), "TRUSTED_PROXIES: "},
		{base("LOG_LEVEL", "loud"), "LOG_LEVEL: "},
		{base("MCP_MAX_BODY_BYTES", "10"), "MCP_MAX_BODY_BYTES: "},
		{base("MCP_MAX_BODY_BYTES", "8000000"), "MCP_MAX_BODY_BYTES: "},
		{base("TOOL_TIMEOUT_SECONDS", "0"), "TOOL_TIMEOUT_SECONDS: "},
		{base("FETCH_URL_MAX_BYTES", "-1"), "FETCH_URL_MAX_BYTES: "},
		{base("FETCH_URL_TIMEOUT_SECONDS", "90"), "FETCH_URL_TIMEOUT_SECONDS: exceeds TOOL_TIMEOUT_SECONDS"},
		{base("SANDBOX_URL", "sandbox:8080"), "SANDBOX_URL: not an absolute http(s) URL"},
		{base("SANDBOX_URL", "http://sandbox:8080/?token=x"), "SANDBOX_URL: must not carry"},
		{base("SANDBOX_TIMEOUT_SECONDS", "61"), "SANDBOX_TIMEOUT_SECONDS: exceeds TOOL_TIMEOUT_SECONDS"},
		{base("SANDBOX_MAX_CODE_BYTES", "300000"), "SANDBOX_MAX_CODE_BYTES: must be below MCP_MAX_BODY_BYTES"},
		{base("SANDBOX_FUSION_REQUIRE_APPROVAL", "nope"), "SANDBOX_FUSION_REQUIRE_APPROVAL: "},
		{base("APPROVAL_TTL", "10"), "APPROVAL_TTL: "},
		{base("APPROVAL_TTL", "30s"), "APPROVAL_TTL: "},
		{base("APPROVAL_TTL", "48h"), "APPROVAL_TTL: "},
		{base("APPROVAL_MAX_PENDING", "0"), "APPROVAL_MAX_PENDING: "},
		{base("APPROVAL_MAX_PENDING", "5", "APPROVAL_MAX_PENDING_PER_USER", "6"), "APPROVAL_MAX_PENDING_PER_USER: exceeds"},
		{base("SANDBOX_TOKEN", "Zq3v9WmX2kLp8RtY5nB7cD1f"), "SANDBOX_TOKEN: set SANDBOX_TOKEN_FILE"},
		{base("SANDBOX_TOKEN_FILE", "/nope"), "SANDBOX_TOKEN_FILE: cannot read /nope"},
		{base("SANDBOX_TOKEN_FILE", "/run/secrets/empty"), "SANDBOX_TOKEN_FILE: /run/secrets/empty is empty"},
		{base("SANDBOX_TOKEN_FILE", "/run/secrets/sandbox-short"), "SANDBOX_TOKEN_FILE: 3 bytes, at least 16"},
		{base("SANDBOX_TOKEN_FILE", "/run/secrets/sandbox-change"), "SANDBOX_TOKEN_FILE: a placeholder"},
	} {
		_, err := load(tc.env)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want prefix %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Zq3v") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

// A start with several faults names them all at once, one line each, in
// the order of the variables — never a secret.
func TestEveryFaultIsReportedAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"bad values everywhere", map[string]string{
			"STRICT": "maybe", "LOG_LEVEL": "loud", "EDGE_IDENTITY_JWKS_FILE": "/nope", "MCP_MAX_BODY_BYTES": "10",
			"FETCH_URL_TIMEOUT_SECONDS": "90", "SANDBOX_URL": "http://sandbox:8080/?token=x", "SANDBOX_TOKEN": "Zq3v9WmX2kLp8RtY5nB7cD1f",
			"APPROVAL_TTL": "48h", "APPROVAL_MAX_PENDING": "5", "APPROVAL_MAX_PENDING_PER_USER": "6",
			"AUDIT_REDIS_PASSWORD_FILE": "/run/secrets/sandbox-token", "AUDIT_STREAM_MAXLEN": "1",
		}, []string{"STRICT", "LOG_LEVEL", "EDGE_IDENTITY_JWKS_FILE", "MCP_MAX_BODY_BYTES", "FETCH_URL_TIMEOUT_SECONDS",
			"SANDBOX_URL", "SANDBOX_TOKEN", "APPROVAL_TTL", "APPROVAL_MAX_PENDING_PER_USER", "AUDIT_REDIS_PASSWORD_FILE",
			"AUDIT_STREAM_MAXLEN"}},
		{"the public listener without its TLS files", base("TLS_CERT_FILE", "", "TLS_KEY_FILE", "/nope", "TLS_CLIENT_CA_FILE", "/run/secrets/edge.jwks"),
			[]string{"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"}},
		{"plain HTTP asked for in strict mode", base("INSECURE_PLAIN_HTTP", "true"), []string{"INSECURE_PLAIN_HTTP"}},
		{"timeouts over the tool timeout", base("TOOL_TIMEOUT_SECONDS", "5", "SANDBOX_TIMEOUT_SECONDS", "6", "SANDBOX_MAX_CODE_BYTES", "300000"),
			[]string{"FETCH_URL_TIMEOUT_SECONDS", "SANDBOX_TIMEOUT_SECONDS", "SANDBOX_MAX_CODE_BYTES"}},
		{"an unreadable value is one fault, not a cascade", base("TOOL_TIMEOUT_SECONDS", "soon", "MCP_MAX_BODY_BYTES", "lots"),
			[]string{"MCP_MAX_BODY_BYTES", "TOOL_TIMEOUT_SECONDS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for line := range strings.SplitSeq(err.Error(), "\n") {
				name, _, _ := strings.Cut(line, ":")
				got = append(got, name)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("faults %q\nwant %q\n%v", got, tc.want, err)
			}
			if strings.Contains(err.Error(), "Zq3v") || strings.Contains(err.Error(), "token=x") {
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
}

// AUDIT_REDIS_CLUSTER makes one AUDIT_REDIS_ADDR a Cluster seed (the
// deployments name every node redis:6379); a list is a Cluster either way.
// Not a boolean, or true without an address, is a fault naming it.
func TestAuditRedisClusterSetting(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		want      bool
		wantFault string
	}{
		{"unset: a single node", base("AUDIT_REDIS_ADDR", "redis:6379"), false, ""},
		{"true", base("AUDIT_REDIS_ADDR", "redis:6379", "AUDIT_REDIS_CLUSTER", "true"), true, ""},
		{"false", base("AUDIT_REDIS_ADDR", "redis:6379", "AUDIT_REDIS_CLUSTER", "false"), false, ""},
		{"a list of nodes needs no flag", base("AUDIT_REDIS_ADDR", "redis-1:6379,redis-2:6379"), false, ""},
		{"not a boolean", base("AUDIT_REDIS_ADDR", "redis:6379", "AUDIT_REDIS_CLUSTER", "cluster"), false, "AUDIT_REDIS_CLUSTER"},
		{"true without AUDIT_REDIS_ADDR", base("AUDIT_REDIS_CLUSTER", "true"), false, "AUDIT_REDIS_CLUSTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.env)
			if tc.wantFault != "" {
				if err == nil {
					t.Fatalf("accepted, want the fault %s", tc.wantFault)
				}
				if name, _, _ := strings.Cut(err.Error(), ":"); name != tc.wantFault || strings.Contains(err.Error(), "\n") {
					t.Fatalf("faults %v, want only %s", err, tc.wantFault)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AuditRedisCluster != tc.want {
				t.Fatalf("AuditRedisCluster %v, want %v", c.AuditRedisCluster, tc.want)
			}
		})
	}
}

func TestSecretNeverEncodes(t *testing.T) {
	b, err := Secret("x").MarshalJSON()
	if err != nil || string(b) != `"[secret]"` {
		t.Fatal(string(b), err)
	}
}

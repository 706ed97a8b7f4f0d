package config_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
	"github.com/edgeguard/edgeguard/services/media-api/internal/config"
)

const signingKey = "4f9a2c7e1b8d3f6a0e5c9b2d7a4f1e8c3b6d9a2f"

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

// env is a strict, complete configuration with the secret in a file.
func env() (map[string]string, map[string]string) {
	return map[string]string{
			"MEDIA_STORAGE_DIR":          "/var/lib/media",
			"MEDIA_URL_SIGNING_KEY_FILE": "/run/secrets/media_url_key",
			"EDGE_IDENTITY_JWKS_FILE":    "/run/edge/jwks.json",
		}, map[string]string{
			"/run/secrets/media_url_key": signingKey + "\n",
			"/run/edge/jwks.json":        edgeJWKS,
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
	if !c.Strict || !c.Auth.Enabled || c.Auth.AcceptJWT || c.ListenAddr != ":8080" || c.InternalListenAddr != ":8081" ||
		c.Auth.ServiceName != "media-api" || string(c.Auth.EdgeIdentityJWKS) != edgeJWKS || c.StorageDir != "/var/lib/media" ||
		c.MaxBytes != 20<<20 || string(c.URLSigningKey) != signingKey || c.URLTTL != 5*time.Minute ||
		c.Retention != 30*24*time.Hour || c.CleanupInterval != time.Hour || c.FetchEnabled ||
		c.FetchTimeout != 10*time.Second || c.FetchMaxRedirects != 3 || c.PublicBaseURL != "" ||
		strings.Join(c.Auth.Audience, ",") != "jan-api" || strings.Join(c.Auth.AllowedAZP, ",") != "jan-cli,jan-agent,jan-web,guest-login" {
		t.Fatalf("config %+v", c)
	}
}

func TestEveryVariableIsRead(t *testing.T) {
	vars, files := env()
	for k, v := range map[string]string{
		"LISTEN_ADDR": "127.0.0.1:9000", "INTERNAL_LISTEN_ADDR": "127.0.0.1:9001", "TRUSTED_PROXIES": "10.0.0.1, 10.0.1.0/24",
		"LOG_LEVEL": "debug", "SERVICE_NAME": "media-canary", "AUTH_ACCEPT_JWT": "true", "AUTH_ISSUER": "https://gw.example/realms/jan",
		"AUTH_AUDIENCE": "a,b", "AUTH_JWKS_URL": "http://keycloak:8080/realms/jan/protocol/openid-connect/certs",
		"AUTH_ALLOWED_AZP": "jan-web", "MEDIA_MAX_BYTES": "1048576", "MEDIA_URL_TTL": "90s",
		"MEDIA_PUBLIC_BASE_URL": "https://gw.example/", "MEDIA_RETENTION_DAYS": "7", "MEDIA_CLEANUP_INTERVAL": "15m",
		"MEDIA_FETCH_ENABLED": "true", "MEDIA_FETCH_TIMEOUT": "5s", "MEDIA_FETCH_MAX_REDIRECTS": "0",
	} {
		vars[k] = v
	}
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "127.0.0.1:9000" || c.InternalListenAddr != "127.0.0.1:9001" || len(c.TrustedProxies) != 2 ||
		c.LogLevel.String() != "debug" || c.Auth.ServiceName != "media-canary" || !c.Auth.AcceptJWT ||
		c.Auth.Issuer != "https://gw.example/realms/jan" || len(c.Auth.Audience) != 2 || c.Auth.JWKSURL == "" ||
		c.Auth.AllowedAZP[0] != "jan-web" || c.MaxBytes != 1<<20 || c.URLTTL != 90*time.Second ||
		c.PublicBaseURL != "https://gw.example" || c.Retention != 7*24*time.Hour || c.CleanupInterval != 15*time.Minute ||
		!c.FetchEnabled || c.FetchTimeout != 5*time.Second || c.FetchMaxRedirects != 0 {
		t.Fatalf("config %+v", c)
	}
}

func TestRefusalsNameTheVariableAndNeverTheSecret(t *testing.T) {
	cases := []struct {
		name   string
		change func(v, f map[string]string)
		want   string
	}{
		{"no signing key", func(v, f map[string]string) { delete(v, "MEDIA_URL_SIGNING_KEY_FILE") }, "MEDIA_URL_SIGNING_KEY_FILE: required"},
		{"unreadable signing key", func(v, f map[string]string) { v["MEDIA_URL_SIGNING_KEY_FILE"] = "/nope" }, "MEDIA_URL_SIGNING_KEY_FILE: cannot read"},
		{"empty signing key", func(v, f map[string]string) { f["/run/secrets/media_url_key"] = " \n" }, "is empty"},
		{"short signing key", func(v, f map[string]string) { f["/run/secrets/media_url_key"] = signingKey[:31] }, "MEDIA_URL_SIGNING_KEY_FILE: 31 bytes, at least 32"},
		{"placeholder signing key", func(v, f map[string]string) { f["/run/secrets/media_url_key"] = "changeme-changeme-changeme-changeme" }, "placeholder"},
		{"repeated signing key", func(v, f map[string]string) { f["/run/secrets/media_url_key"] = strings.Repeat("a", 40) }, "placeholder"},
		{"inline signing key in strict mode", func(v, f map[string]string) {
			delete(v, "MEDIA_URL_SIGNING_KEY_FILE")
			v["MEDIA_URL_SIGNING_KEY"] = signingKey
		}, "MEDIA_URL_SIGNING_KEY: set MEDIA_URL_SIGNING_KEY_FILE"},
		{"auth disabled in strict mode", func(v, f map[string]string) { v["AUTH_ENABLED"] = "false" }, "AUTH_ENABLED: cannot be false"},
		{"no edge jwks in strict mode", func(v, f map[string]string) { delete(v, "EDGE_IDENTITY_JWKS_FILE") }, "EDGE_IDENTITY_JWKS_FILE: required in strict mode"},
		{"unreadable edge jwks", func(v, f map[string]string) { v["EDGE_IDENTITY_JWKS_FILE"] = "/nope" }, "EDGE_IDENTITY_JWKS_FILE: cannot read"},
		{"bad edge jwks", func(v, f map[string]string) { f["/run/edge/jwks.json"] = `{"keys":[]}x` }, "EDGE_IDENTITY_JWKS_FILE"},
		{"jwt without issuer", func(v, f map[string]string) { v["AUTH_ACCEPT_JWT"] = "true" }, "AUTH_ISSUER: required"},
		{"bad issuer", func(v, f map[string]string) { v["AUTH_ACCEPT_JWT"] = "true"; v["AUTH_ISSUER"] = "gw.example" }, "AUTH_ISSUER"},
		{"no storage dir", func(v, f map[string]string) { delete(v, "MEDIA_STORAGE_DIR") }, "MEDIA_STORAGE_DIR: required"},
		{"max bytes too small", func(v, f map[string]string) { v["MEDIA_MAX_BYTES"] = "100" }, "MEDIA_MAX_BYTES"},
		{"max bytes not a number", func(v, f map[string]string) { v["MEDIA_MAX_BYTES"] = "20MiB" }, "MEDIA_MAX_BYTES"},
		{"ttl too long", func(v, f map[string]string) { v["MEDIA_URL_TTL"] = "48h" }, "MEDIA_URL_TTL"},
		{"ttl not a duration", func(v, f map[string]string) { v["MEDIA_URL_TTL"] = "300" }, "MEDIA_URL_TTL"},
		{"retention zero", func(v, f map[string]string) { v["MEDIA_RETENTION_DAYS"] = "0" }, "MEDIA_RETENTION_DAYS"},
		{"cleanup too often", func(v, f map[string]string) { v["MEDIA_CLEANUP_INTERVAL"] = "1s" }, "MEDIA_CLEANUP_INTERVAL"},
		{"fetch flag", func(v, f map[string]string) { v["MEDIA_FETCH_ENABLED"] = "yes please" }, "MEDIA_FETCH_ENABLED"},
		{"fetch timeout", func(v, f map[string]string) { v["MEDIA_FETCH_TIMEOUT"] = "10m" }, "MEDIA_FETCH_TIMEOUT"},
		{"fetch redirects", func(v, f map[string]string) { v["MEDIA_FETCH_MAX_REDIRECTS"] = "50" }, "MEDIA_FETCH_MAX_REDIRECTS"},
		{"base url with query", func(v, f map[string]string) { v["MEDIA_PUBLIC_BASE_URL"] = "https://gw.example/?a=b" }, "MEDIA_PUBLIC_BASE_URL"},
		{"base url with credentials", func(v, f map[string]string) { v["MEDIA_PUBLIC_BASE_URL"] = "https://u:p@gw.example" }, "MEDIA_PUBLIC_BASE_URL"},
		{"same listeners", func(v, f map[string]string) { v["INTERNAL_LISTEN_ADDR"] = ":8080" }, "INTERNAL_LISTEN_ADDR"},
		{"trust everyone", func(v, f map[string]string) { v["TRUSTED_PROXIES"] = "0.0.0.0/0" }, "TRUSTED_PROXIES"},
		{"log level", func(v, f map[string]string) { v["LOG_LEVEL"] = "loud" }, "LOG_LEVEL"},
		{"service name", func(v, f map[string]string) { v["SERVICE_NAME"] = "Media API" }, "SERVICE_NAME"},
		{"strict flag", func(v, f map[string]string) { v["STRICT"] = "maybe" }, "STRICT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vars, files := env()
			c.change(vars, files)
			_, err := load(vars, files)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Fatalf("error %q does not contain %q", msg, c.want)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			for _, secret := range []string{signingKey, signingKey[:31], "changeme-changeme"} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error %q shows the secret", msg)
				}
			}
		})
	}
}

// A start with several faults names them all at once, one line each, in
// the order of the variables — never the secret.
func TestEveryFaultIsReportedAtOnce(t *testing.T) {
	cases := []struct {
		name   string
		change func(v, f map[string]string)
		want   []string
	}{
		{"nothing set", func(v, f map[string]string) { clear(v) }, []string{
			"EDGE_IDENTITY_JWKS_FILE", "MEDIA_STORAGE_DIR", "MEDIA_URL_SIGNING_KEY_FILE"}},
		{"the public listener without its TLS files, with other faults", func(v, f map[string]string) {
			v["TLS_CERT_FILE"], v["TLS_KEY_FILE"], v["TLS_CLIENT_CA_FILE"] = "", "", ""
			v["MEDIA_MAX_BYTES"] = "20MiB"
		}, []string{"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE", "MEDIA_MAX_BYTES"}},
		{"plain HTTP asked for in strict mode", func(v, f map[string]string) { v["INSECURE_PLAIN_HTTP"] = "true" },
			[]string{"INSECURE_PLAIN_HTTP"}},
		{"bad values everywhere", func(v, f map[string]string) {
			v["TRUSTED_PROXIES"] = "0.0.0.0/0"
			v["AUTH_ENABLED"] = "false"
			v["MEDIA_MAX_BYTES"] = "20MiB"
			f["/run/secrets/media_url_key"] = signingKey[:31]
			v["MEDIA_URL_TTL"] = "48h"
			v["MEDIA_PUBLIC_BASE_URL"] = "https://u:p@gw.example"
			v["MEDIA_FETCH_ENABLED"] = "yes please"
			v["MEDIA_FETCH_MAX_REDIRECTS"] = "50"
		}, []string{"TRUSTED_PROXIES", "AUTH_ENABLED", "MEDIA_MAX_BYTES", "MEDIA_URL_SIGNING_KEY_FILE", "MEDIA_URL_TTL",
			"MEDIA_PUBLIC_BASE_URL", "MEDIA_FETCH_ENABLED", "MEDIA_FETCH_MAX_REDIRECTS"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vars, files := env()
			c.change(vars, files)
			_, err := load(vars, files)
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for line := range strings.SplitSeq(err.Error(), "\n") {
				name, _, _ := strings.Cut(line, ":")
				got = append(got, name)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("faults %q\nwant %q\n%v", got, c.want, err)
			}
			for _, secret := range []string{signingKey, signingKey[:31], "u:p"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q shows a secret", err)
				}
			}
		})
	}
}

func TestDevModeAcceptsInlineSecretsAndJWTOnly(t *testing.T) {
	vars := map[string]string{"STRICT": "false", "MEDIA_STORAGE_DIR": "/tmp/m", "MEDIA_URL_SIGNING_KEY": signingKey,
		"AUTH_ACCEPT_JWT": "true", "AUTH_ISSUER": "http://localhost:8080/realms/jan",
		"INSECURE_PLAIN_HTTP": "true", "TLS_CERT_FILE": "", "TLS_KEY_FILE": "", "TLS_CLIENT_CA_FILE": ""}
	c, err := load(vars, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Strict || string(c.URLSigningKey) != signingKey || c.Auth.EdgeIdentityJWKS != nil || !c.TLS.Plain {
		t.Fatalf("config %+v", c)
	}
	// outside strict mode a short key is still refused
	vars["MEDIA_URL_SIGNING_KEY"] = "short"
	if _, err := load(vars, nil); err == nil {
		t.Fatal("short key accepted in dev mode")
	}
	// no credential at all would be accepted
	vars["MEDIA_URL_SIGNING_KEY"] = signingKey
	vars["AUTH_ACCEPT_JWT"] = "false"
	if _, err := load(vars, nil); err == nil || !strings.Contains(err.Error(), "EDGE_IDENTITY_JWKS_FILE") {
		t.Fatalf("no authenticator accepted: %v", err)
	}
	vars["AUTH_ENABLED"] = "false"
	if _, err := load(vars, nil); err != nil {
		t.Fatalf("AUTH_ENABLED=false in dev mode: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	vars, files := env()
	c, err := load(vars, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c.URLSigningKey), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c.URLSigningKey)} {
		if strings.Contains(s, signingKey) {
			t.Fatalf("printed: %s", s)
		}
	}
}

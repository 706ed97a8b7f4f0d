package rig

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"
)

func benchConfig(t *testing.T) (KongBenchConfig, *Rig) {
	t.Helper()
	r, srv, _ := newRig(t)
	return KongBenchConfig{
		UpstreamURL: "http://127.0.0.1:1", Issuer: r.Issuer, JWKSURL: srv.URL + JWKSPath,
		ValidateURL: srv.URL + ValidatePath, RedisAddr: "127.0.0.1:6390", JWTPublicKeyPEM: r.PublicKeyPEM(),
		InternalTokenFile: "/etc/kong/secrets/internal_token", EdgeKeyFile: "/etc/kong/secrets/edge_identity.pem",
	}, r
}

// Every target has its route, the Lua jwt consumer holds the rig's own
// public key (so the rig's JWT passes Kong's jwt plugin), and Kong's
// rate-limiting and ours use the same Redis.
func TestKongBenchYMLRoutesEveryTarget(t *testing.T) {
	c, r := benchConfig(t)
	y, err := KongBenchYML(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(y)
	routed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^    paths: \[(/[a-z0-9-]+)\]$`).FindAllStringSubmatch(s, -1) {
		routed[m[1]] = true
	}
	for _, tg := range KongTargets {
		if !routed[tg.Path] {
			t.Errorf("target %s: no route for %s", tg.Name, tg.Path)
		}
		if tg.Credential != "none" && tg.Credential != "jwt" && tg.Credential != "key" {
			t.Errorf("target %s: credential %q", tg.Name, tg.Credential)
		}
	}
	if _, ok := KongTarget(KongBaseline); !ok {
		t.Fatal("the baseline is not a target")
	}
	for _, want := range []string{
		"key: '" + r.Issuer + "'", "algorithm: RS256", "name: emptyplugin", "config: {calls: 8}",
		"redis: {host: '127.0.0.1', port: 6390}", "policy: redis", "addresses: ['127.0.0.1:6390']",
		"edge_signing_key_file: '/etc/kong/secrets/edge_identity.pem'", "internal_token_file: '/etc/kong/secrets/internal_token'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("kong-bench.yml lacks %q", want)
		}
	}
	// the PEM block, unindented, is the rig's public key
	i := strings.Index(s, "-----BEGIN PUBLIC KEY-----")
	j := strings.Index(s, "-----END PUBLIC KEY-----")
	if i < 0 || j < i {
		t.Fatal("no PEM in kong-bench.yml")
	}
	var lines []string
	for _, l := range strings.Split(s[i:j+len("-----END PUBLIC KEY-----")], "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	b, _ := pem.Decode([]byte(strings.Join(lines, "\n") + "\n"))
	if b == nil {
		t.Fatal("the PEM does not decode")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil || !pub.(*rsa.PublicKey).Equal(&r.key.PublicKey) {
		t.Fatalf("the PEM is not the rig's key: %v", err)
	}
}

func TestKongBenchYMLNeedsEveryValue(t *testing.T) {
	ok, _ := benchConfig(t)
	bad := []func(*KongBenchConfig){
		func(c *KongBenchConfig) { c.UpstreamURL = "" },
		func(c *KongBenchConfig) { c.RedisAddr = "redis:6379" }, // Kong would resolve it itself
		func(c *KongBenchConfig) { c.RedisAddr = "127.0.0.1" },
		func(c *KongBenchConfig) { c.JWTPublicKeyPEM = "not a key" },
		func(c *KongBenchConfig) { c.EdgeKeyFile = "/tmp/it's" },
		func(c *KongBenchConfig) { c.InternalTokenFile = "/tmp/a\nb: c" },
		func(c *KongBenchConfig) { c.ValidateURL = "file:///etc/passwd" },
	}
	for i, mutate := range bad {
		c := ok
		mutate(&c)
		if _, err := KongBenchYML(c); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

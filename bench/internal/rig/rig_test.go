package rig

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

const testToken = "internal-token-for-the-rig-tests"

func newRig(t testing.TB) (*Rig, *httptest.Server, apikey.Key) {
	t.Helper()
	k, err := apikey.Generate(apikey.EnvLive)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New([]byte(testToken), []apikey.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.Issuer = srv.URL + "/realms/bench"
	testenv.RecordSecret(testToken, k.Secret()) // the run's secret sweep (scripts/test.sh)
	return r, srv, k
}

func post(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+ValidatePath, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Internal-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not JSON: %q", b)
	}
	return resp.StatusCode, m
}

func code(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestValidateAnswersPerTheContract(t *testing.T) {
	r, srv, key := newRig(t)
	other, _ := apikey.Generate(apikey.EnvLive)
	tests := []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"valid key", testToken, `{"key":"` + key.Secret() + `"}`, 200, ""},
		{"unknown well-formed key", testToken, `{"key":"` + other.Secret() + `"}`, 401, "key_unknown"},
		{"no internal token", "", `{"key":"` + key.Secret() + `"}`, 401, "internal_auth_failed"},
		{"wrong internal token", testToken + "x", `{"key":"` + key.Secret() + `"}`, 401, "internal_auth_failed"},
		{"malformed key", testToken, `{"key":"sk_live_nope"}`, 400, "invalid_request"},
		{"not JSON", testToken, `key=sk`, 400, "invalid_request"},
		{"body over 4 KiB", testToken, `{"key":"` + strings.Repeat("a", MaxValidateBody) + `"}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := post(t, srv.URL, tt.token, tt.body)
			if status != tt.status || code(m) != tt.code {
				t.Fatalf("got %d %q, want %d %q", status, code(m), tt.status, tt.code)
			}
			if status == 200 && (m["key_id"] != key.KID() || m["subject"] == "" || m["email"] != nil) {
				t.Fatalf("valid answer %v: key_id must be the key's, a subject, no PII", m)
			}
		})
	}
	s := r.Stats()
	if s.ValidateCalls != int64(len(tests)) || s.ValidateValid != 1 || s.ValidateUnknown != 1 || s.ValidateBad != 5 {
		t.Fatalf("stats %+v", s)
	}
	resp, err := http.Get(srv.URL + ValidatePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET validate: %d", resp.StatusCode)
	}
}

// The rig's JWKS and tokens are what the edge's real verifier accepts, and
// what Sign makes with another key is refused for the right reason.
func TestMintedTokensVerifyWithTheEdgesVerifier(t *testing.T) {
	r, srv, _ := newRig(t)
	v, err := jwtauth.New(jwtauth.Config{
		Issuers:    []jwtauth.Issuer{{Issuer: r.Issuer, JWKSURL: srv.URL + JWKSPath}},
		Audiences:  []string{"jan-api"},
		AllowedAZP: []string{"jan-cli"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := r.Mint("bench-user", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(ctx, tok)
	if err != nil || id.Subject != "bench-user" {
		t.Fatalf("minted token: %v, %+v", err, id)
	}
	forged, err := Sign(otherKey(t), r.KID, Claims(r.Issuer, "x", time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, forged); !errors.Is(err, jwtauth.ReasonSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	if r.Stats().JWKSFetches < 1 {
		t.Fatal("no JWKS fetch counted")
	}
}

func TestKongYMLNeedsEveryValue(t *testing.T) {
	ok := KongConfig{
		StubURL: "http://127.0.0.1:1", Issuer: "http://127.0.0.1:2/realms/bench", JWKSURL: "http://127.0.0.1:2/certs",
		ValidateURL: "http://127.0.0.1:2/internal/api-keys/validate", InternalTokenFile: "/tmp/t", EdgeKeyFile: "/tmp/k",
		RedisAddr: "127.0.0.1:6379",
	}
	y, err := KongYML(ok)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: edgeguard", "paths: ['/plain']", "paths: ['/chain']", "url: 'http://127.0.0.1:1/v1/models'",
		"addresses: ['127.0.0.1:6379']", "edge_signing_key_file: '/tmp/k'", "upstream_name: llm-api"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("kong.yml lacks %q:\n%s", want, y)
		}
	}
	bad := []func(*KongConfig){
		func(c *KongConfig) { c.StubURL = "" },
		func(c *KongConfig) { c.RedisAddr = "" },
		func(c *KongConfig) { c.EdgeKeyFile = "/tmp/it's" },
		func(c *KongConfig) { c.InternalTokenFile = "/tmp/a\nb: c" },
		func(c *KongConfig) { c.JWKSURL = "file:///etc/passwd" },
	}
	for i, mutate := range bad {
		c := ok
		mutate(&c)
		if _, err := KongYML(c); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

// FuzzValidate: whatever reaches the validate endpoint, the answer is JSON
// with a 2xx or 4xx status, never a 5xx or a panic.
func FuzzValidate(f *testing.F) {
	r, srv, key := newRig(f)
	_ = srv
	for _, s := range []string{
		`{"key":"` + key.Secret() + `"}`, `{"key":"sk_live_AbCd1234efGH5678ijKL9012mnOP3456x7Yz9Q"}`,
		`{"key":null}`, `{"key":["a"]}`, `{"key":"` + key.Secret() + `","key":"x"}`, `[[[[[[[[[[`,
		"{\"key\":\"sk_live_\u0000\"}", `{"key":"' OR 1=1 --"}`, ``,
	} {
		f.Add(s, testToken)
	}
	f.Fuzz(func(t *testing.T, body, token string) {
		req := httptest.NewRequest(http.MethodPost, ValidatePath, strings.NewReader(body))
		req.Header.Set("X-Internal-Token", token)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code >= 500 || !json.Valid(w.Body.Bytes()) {
			t.Fatalf("status %d body %q", w.Code, w.Body.String())
		}
	})
}

package redact

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const (
	jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
	key = "sk_live_AbCd1234EfGh5678IjKl9012MnOp3456QrStUv"
)

func TestEveryPolicyHeaderIsRedacted(t *testing.T) {
	for _, h := range SensitiveHeaders() {
		for _, spelling := range []string{h, strings.ToUpper(h), strings.ReplaceAll(h, "-", "_")} {
			got := HeaderValue(spelling, "secret-value "+jwt)
			if strings.Contains(got, "secret-value") || strings.Contains(got, jwt) {
				t.Errorf("%s: %q", spelling, got)
			}
		}
	}
	if got := HeaderValue("Accept", "text/html"); got != "text/html" {
		t.Errorf("Accept changed: %q", got)
	}
}

func TestAPIKeysKeepTheirKeyID(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"X-API-Key", key}, {"Authorization", "Bearer " + key}, {"apikey", key},
	} {
		got := HeaderValue(tc.name, tc.value)
		if got != "sk_live_AbCd1234…"+Mask {
			t.Errorf("%s: %q", tc.name, got)
		}
	}
}

func TestEveryPolicyParameterIsRedacted(t *testing.T) {
	for _, p := range SensitiveParams() {
		for _, spelling := range []string{p, strings.ToUpper(p)} {
			q := Query(url.Values{spelling: {"s3cret"}, "page": {"2"}}.Encode())
			if strings.Contains(q, "s3cret") || !strings.Contains(q, "page=2") {
				t.Errorf("%s: %q", spelling, q)
			}
		}
	}
	if Query("%zz=1") != Mask {
		t.Error("an undecodable query must be masked whole")
	}
}

func TestURL(t *testing.T) {
	u, _ := url.Parse("https://user:pw@idp/realms/jan/protocol/openid-connect/auth?client_id=jan-web&code=abc&state=s#access_token=" + jwt)
	got := URL(u)
	for _, leak := range []string{"pw", "code=abc", jwt} {
		if strings.Contains(got, leak) {
			t.Fatalf("%q leaks %q", got, leak)
		}
	}
	if !strings.Contains(got, "client_id=jan-web") {
		t.Fatalf("%q lost a harmless parameter", got)
	}
	if URLString("://bad") != Mask {
		t.Fatal("unparsable URL must be masked")
	}
}

func TestStringScrubsTokensAndKeysInProse(t *testing.T) {
	in := "login failed for " + jwt + " with key " + key + ", sk_ is a prefix, eyJ.not"
	got := String(in)
	if strings.Contains(got, jwt) || strings.Contains(got, key) {
		t.Fatalf("%q", got)
	}
	if !strings.Contains(got, "sk_live_AbCd1234…") || !strings.Contains(got, "sk_ is a prefix") || !strings.Contains(got, "eyJ.not") {
		t.Fatalf("over-redacted: %q", got)
	}
	if s := "nothing here"; String(s) != s {
		t.Fatal("clean text changed")
	}
}

func TestHeadersMap(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer " + jwt}, "Cookie": {"kc=1"}, "Accept": {"*/*"}}
	m := Headers(h)
	if m["Authorization"] != Mask || m["Cookie"] != Mask || m["Accept"] != "*/*" {
		t.Fatalf("%v", m)
	}
}

func TestWriterScrubsEveryLogLine(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(Writer(&buf))
	log.Error().Str("detail", "token "+jwt).Msg("call failed with " + key)
	if strings.Contains(buf.String(), jwt) || strings.Contains(buf.String(), key) {
		t.Fatalf("%s", buf.String())
	}
	if !strings.Contains(buf.String(), `"level":"error"`) {
		t.Fatalf("line mangled: %s", buf.String())
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{jwt, key, "eyJ", "sk_", "a.b.c", "eyJa.b.c.d.e", strings.Repeat("eyJ.", 100), "x" + key} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if strings.Contains(out, jwt) || strings.Contains(out, key) {
			t.Fatalf("%q still carries a secret", out)
		}
		if String(out) != out {
			t.Fatalf("not idempotent: %q", out)
		}
	})
}

func FuzzQuery(f *testing.F) {
	for _, s := range []string{"code=abc&state=x", "token=" + jwt, "%zz", "a=1;b=2", "&&=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q := Query(raw)
		vals, err := url.ParseQuery(q)
		if err != nil && q != Mask {
			t.Fatalf("unparsable output %q", q)
		}
		for k, vs := range vals {
			if IsSensitiveParam(k) {
				for _, v := range vs {
					if v != Mask {
						t.Fatalf("%s=%q not masked", k, v)
					}
				}
			}
		}
	})
}

func BenchmarkStringClean(b *testing.B) {
	line := `{"level":"info","request_id":"abc","route":"llm-openai","status":200,"duration_ms":3.2}`
	for b.Loop() {
		_ = String(line)
	}
}

package apikey

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// FuzzParse: Parse never panics, accepts only what the format allows, and a
// Key it returns is exactly its input and never prints its secret.
func FuzzParse(f *testing.F) {
	valid := withChecksum("sk_live_" + random32)
	for _, s := range []string{
		valid,
		withChecksum("sk_test_" + random32),
		withChecksum("sk_" + random32),
		"",
		"sk_",
		"sk_live_",
		"sk_live_" + random32,          // no checksum
		valid[:len(valid)-1] + "0",     // wrong checksum
		strings.ToUpper(valid),         // case changed
		"Bearer " + valid,              // scheme left in
		valid + "\r\nX-User-ID: admin", // header injection
		"sk_live_' OR '1'='1' --" + random32[:15],       // SQL injection
		"sk_live_'; DROP TABLE api_keys; --",            // SQL injection
		`sk_live_","admin":true,"x":"` + random32[:19],  // JSON injection
		"sk_live_" + "\u0410" + random32[2:] + "000000", // homoglyph
		"sk_live_\x00" + random32[1:] + "000000",        // NUL
		"sk_live_%00" + random32[3:] + "000000",         // percent-encoding
		"sk_live_../../../etc/passwd" + random32[:19],   // traversal
		"sk_live_" + strings.Repeat("A", 10<<10),        // 10 kB
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",     // alg none JWT
		"sk-proj-" + random32 + random32,                // OpenAI-style key
		"ghp_" + random32 + "0000",                      // GitHub-style token
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Parse(s)
		if err != nil {
			if !k.IsZero() {
				t.Fatal("rejection with a non-zero Key")
			}
			if r := ReasonOf(err); r != ReasonMalformed && r != ReasonChecksum {
				t.Fatalf("reason %q", r)
			}
			var fe *formatError
			if !errors.As(err, &fe) {
				t.Fatalf("not a format error: %v", err)
			}
			return
		}
		if k.Secret() != s || (len(s) != MinLen && len(s) != MaxLen) || !strings.HasPrefix(s, Prefix) {
			t.Fatalf("accepted %q", s)
		}
		for i := int(k.off); i < len(s); i++ {
			if !strings.ContainsRune(alphabet, rune(s[i])) {
				t.Fatalf("accepted a non-base62 character in %q", s)
			}
		}
		if crcString(s[:len(s)-ChecksumLen]) != decodeChecksum(s[len(s)-ChecksumLen:]) {
			t.Fatalf("accepted a wrong checksum: %q", s)
		}
		if !validKID(k.KID()) || len(k.Last4()) != 4 {
			t.Fatal("bad parts")
		}
		random := s[int(k.off)+KIDLen : len(s)-ChecksumLen]
		for _, out := range []string{k.String(), fmt.Sprintf("%v %+v %#v %x", k, k, k, k), string(mustJSON(t, k))} {
			if strings.Contains(out, random) {
				t.Fatalf("printed the secret: %s", out)
			}
		}
	})
}

func decodeChecksum(s string) uint32 {
	var v uint64
	for i := 0; i < len(s); i++ {
		v = v*62 + uint64(base62[s[i]])
	}
	return uint32(v)
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeAnswer: whatever llm-api (or something posing as it) answers,
// decoding never panics, and an identity comes out only for a 200 that
// names the key's own id, with bounded, clean fields.
func FuzzDecodeAnswer(f *testing.F) {
	const kid = "AbCd1234"
	for _, c := range []struct {
		status int
		body   string
	}{
		{200, `{"subject":"s","username":"u","roles":["user"],"key_id":"AbCd1234","expires_at":null,"guest":false}`},
		{200, `{"subject":"s","roles":["user","guest"],"key_id":"AbCd1234","expires_at":"2031-01-01T00:00:00Z","guest":true}`},
		{200, `{"subject":"s","key_id":"ZZZZZZZZ"}`},
		{200, `{"subject":"s","key_id":"AbCd1234","roles":null}`},
		{200, `{"subject":"a\u0000b","key_id":"AbCd1234"}`},
		{200, `{"subject":"s","key_id":"AbCd1234","subject":"admin"}`}, // duplicate key
		{200, `{"subject":"s","key_id":"AbCd1234","roles":[` + strings.Repeat(`"r",`, 100) + `"r"]}`},
		{200, strings.Repeat(`[`, 10000)}, // nesting bomb
		{200, `{"subject":"` + strings.Repeat("\\u00e9", 300) + `","key_id":"AbCd1234"}`},
		{200, `{"subject":"s","key_id":"AbCd1234","expires_at":"9999-12-31T23:59:59Z"}`},
		{200, `{"subject":"s","key_id":"AbCd1234","expires_at":"0001-01-01T00:00:00Z"}`},
		{200, `null`},
		{200, ``},
		{400, `{"error":{"code":"invalid_request"}}`},
		{401, `{"error":{"code":"key_revoked","message":"x"}}`},
		{401, `{"error":{"code":"internal_auth_failed"}}`},
		{401, `{"error":"key_revoked"}`},
		{503, `{"error":{"code":"unavailable"}}`},
		{302, ``},
	} {
		f.Add(c.status, []byte(c.body))
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		id, reason, err := decodeAnswer(status, body, kid, now)
		n := 0
		for _, b := range []bool{id != nil, reason != "", err != nil} {
			if b {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("want exactly one outcome: id=%v reason=%q err=%v", id, reason, err)
		}
		if reason != "" && !isValidatorReason(reason) {
			t.Fatalf("reason %q", reason)
		}
		if id == nil {
			return
		}
		if status != 200 || id.APIKeyID != kid || id.AuthMethod != identity.MethodAPIKey || id.Subject == "" {
			t.Fatalf("identity from status %d: %+v", status, *id)
		}
		if len(id.RealmRoles) > maxRoles || len(id.Subject) > maxFieldLen || len(id.Username) > maxFieldLen {
			t.Fatal("unbounded field")
		}
		for _, s := range append([]string{id.Subject, id.Username}, id.RealmRoles...) {
			if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") {
				t.Fatalf("unclean field %q", s)
			}
		}
		if !id.ExpiresAt.IsZero() && !id.ExpiresAt.After(now) {
			t.Fatal("expired identity")
		}
	})
}

func isValidatorReason(r Reason) bool {
	switch r {
	case ReasonMalformed, ReasonUnknown, ReasonRevoked, ReasonExpired, ReasonOwnerDisabled:
		return true
	}
	return false
}

package deviceflow

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// decodeSeeds are real answers of Keycloak's device, token and discovery
// endpoints, and the malformed ones a broken or hostile server (or a proxy
// in between) sends.
var decodeSeeds = []string{
	`{"device_code":"Q3x","user_code":"WDJB-MJHT","verification_uri":"http://127.0.0.1:8080/realms/jan/device","verification_uri_complete":"http://127.0.0.1:8080/realms/jan/device?user_code=WDJB-MJHT","expires_in":600,"interval":5}`,
	okToken,
	`{"error":"authorization_pending","error_description":"The authorization request is still pending"}`,
	`{"error":"slow_down"}`, `{"error":"expired_token"}`, `{"error":"access_denied"}`,
	`{"issuer":"http://127.0.0.1:8080/realms/jan","device_authorization_endpoint":"http://127.0.0.1:8080/d","token_endpoint":"http://127.0.0.1:8080/t","jwks_uri":"http://127.0.0.1:8080/c"}`,
	``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `}`, `{}{}`, `{"a":1}x`,
	`<!DOCTYPE html><html><body>Sign in</body></html>`,
	`{"access_token":42,"token_type":"Bearer"}`,
	`{"access_token":"a","token_type":["Bearer"]}`,
	`{"access_token":"a","token_type":"Bearer","expires_in":"300"}`,
	`{"access_token":"a","token_type":"Bearer","expires_in":-1}`,
	`{"access_token":"a","token_type":"Bearer","expires_in":1e400}`,
	`{"access_token":"a","token_type":"Bearer","expires_in":9223372036854775808}`,
	`{"access_token":"a","access_token":"b","token_type":"Bearer"}`,
	`{"access_token":"a\u0000b","token_type":"bearer"}`,
	`{"device_code":"d","user_code":"U","verification_uri":"https://x/d","interval":-9223372036854775808}`,
	`{"device_code":"d","user_code":"U","verification_uri":"https://x/d","interval":1.5}`,
	`{"device_code":"d","user_code":"\u001b[31mU","verification_uri":"https://x/d"}`,
	`{"device_code":"d","user_code":"U","verification_uri":"javascript:alert(1)"}`,
	`{"device_code":"d","user_code":"U","verification_uri":"https://user:pw@x/d"}`,
	`{"error":{"code":"x"}}`, `{"error":null}`, `{"error":"` + strings.Repeat("e", 100) + `"}`,
	strings.Repeat(`{"a":`, 5000), strings.Repeat(`[`, 5000),
	"\xff\xfe{\"access_token\":\"a\"}", "{\"access_token\":\"\xff\",\"token_type\":\"Bearer\"}",
}

// FuzzDecode feeds any body and status to the three decoders: they never
// panic, their results respect the bounds, and their errors are short,
// printable and carry no control characters (they may reach a terminal).
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		for _, st := range []int{200, 400, 401, 500} {
			f.Add(st, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		checkErr := func(err error) {
			if err == nil {
				return
			}
			msg := err.Error()
			if len(msg) > 400 || !utf8.ValidString(msg) {
				t.Fatalf("error too long or not UTF-8: %q", msg)
			}
			for _, r := range msg {
				if unicode.IsControl(r) {
					t.Fatalf("error carries a control character: %q", msg)
				}
			}
		}
		a, err := DecodeAuthorization(status, body)
		checkErr(err)
		if err == nil {
			if status != 200 || a.DeviceCode == "" || a.UserCode == "" || a.VerificationURI == "" {
				t.Fatalf("accepted an incomplete authorization: %v", a)
			}
			if a.Interval < MinInterval || a.Interval > MaxInterval || a.ExpiresIn <= 0 || a.ExpiresIn > MaxExpiresIn {
				t.Fatalf("bounds not applied: %v", a)
			}
			if !printable(a.UserCode, 64) || checkShownURL(a.VerificationURI) != nil {
				t.Fatalf("unprintable user code or URL accepted: %v", a)
			}
		}
		tok, err := DecodeToken(status, body)
		checkErr(err)
		if err == nil && (status != 200 || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn < 0) {
			t.Fatalf("accepted a bad token answer: %v", tok)
		}
		if err != nil && status != 200 {
			var oe *OAuthError
			if !errors.As(err, &oe) || (oe.Code != "" && !validCode(oe.Code)) {
				t.Fatalf("non-200 answer: %v", err)
			}
		}
		p, err := DecodeDiscovery(status, body, false)
		checkErr(err)
		if err == nil && (p.Issuer == "" || p.TokenEndpoint == "" || p.DeviceEndpoint == "" || p.JWKSURI == "") {
			t.Fatalf("accepted incomplete discovery: %+v", p)
		}
	})
}

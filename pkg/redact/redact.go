// Package redact is edgeguard's one redaction policy for everything that
// logs: sensitive headers and query parameters become [REDACTED] (an API key
// may keep its public key id), URLs lose their sensitive parameters, and a
// log writer scrubs anything shaped like a JWT or an sk_ key from every line
// as the last line of defence.
//
// It is not a secret store or a data-loss scanner: it knows edgeguard's
// credential shapes, not arbitrary PII.
package redact

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/edgeguard/edgeguard/pkg/headername"
)

// Mask replaces a redacted value.
const Mask = "[REDACTED]"

// sensitiveHeaders are compared canonically (lower case, '_' as '-').
var sensitiveHeaders = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "apikey",
	"x-internal-token", "x-edge-identity", "x-access-token", "x-id-token", "x-refresh-token", "x-userinfo",
}

// sensitiveParams are compared case-insensitively.
var sensitiveParams = []string{
	"access_token", "token", "code", "user_code", "device_code", "client_secret", "password",
	"api_key", "apikey", "sig", "signature", "x-amz-signature", "refresh_token", "id_token",
}

// SensitiveHeaders lists the header names the policy redacts (documentation
// and tests).
func SensitiveHeaders() []string { return append([]string(nil), sensitiveHeaders...) }

// SensitiveParams lists the query parameters the policy redacts.
func SensitiveParams() []string { return append([]string(nil), sensitiveParams...) }

// IsSensitiveHeader reports whether the header's values must never be
// logged, in any case and with '_' for '-'.
func IsSensitiveHeader(name string) bool {
	for _, h := range sensitiveHeaders {
		if headername.EqualCanonical(name, h) {
			return true
		}
	}
	return false
}

// IsSensitiveParam reports whether the query parameter must never be logged.
func IsSensitiveParam(name string) bool {
	for _, p := range sensitiveParams {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
}

// HeaderValue returns what may be logged of a header value: the value itself
// for headers outside the policy, else Mask — except that an API key (a value
// starting with sk_, or "Bearer sk_…") keeps its public prefix and key id so
// an operator can tell which key was used.
func HeaderValue(name, value string) string {
	if !IsSensitiveHeader(name) {
		return String(value)
	}
	v := value
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		v = strings.TrimSpace(v[7:])
	}
	if kid := apiKeyID(v); kid != "" {
		return kid + "…" + Mask
	}
	return Mask
}

// Headers returns a copy of h fit for a log line: sensitive values masked,
// names in canonical MIME form, keys sorted by the caller's encoder.
func Headers(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for name, values := range h {
		masked := make([]string, len(values))
		for i, v := range values {
			masked[i] = HeaderValue(name, v)
		}
		out[http.CanonicalHeaderKey(name)] = strings.Join(masked, ", ")
	}
	return out
}

// Query returns a raw query with the values of sensitive parameters masked.
// Undecodable input is masked whole (it could hide a secret).
func Query(raw string) string {
	if raw == "" {
		return ""
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return Mask
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range vals[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			if IsSensitiveParam(k) {
				b.WriteString(Mask)
			} else {
				b.WriteString(url.QueryEscape(String(v)))
			}
		}
	}
	return b.String()
}

// URL renders u for a log line: no user info, sensitive query parameters
// and the fragment masked.
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		c.User = url.User(Mask)
	}
	c.RawQuery = Query(c.RawQuery)
	if c.Fragment != "" {
		c.Fragment, c.RawFragment = Mask, ""
	}
	return String(c.String())
}

// URLString parses and redacts a URL string; unparsable input is masked.
func URLString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return Mask
	}
	return URL(u)
}

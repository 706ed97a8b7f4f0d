// Package bearer parses the "Bearer" scheme of an Authorization header
// (RFC 6750 §2.1, scheme case-insensitive per RFC 9110 §11.1), and the
// "DPoP" scheme of a DPoP-bound token (RFC 9449 §7.1, the same grammar),
// shared by the auth plugins so they agree on what a credential is.
package bearer

import "strings"

// APIKeyPrefix marks an API key in a bearer value ("Bearer sk_…", what
// OpenAI SDKs send): keycloak-apikey's credential, not a JWT.
const APIKeyPrefix = "sk_"

// Token returns the credential of "Bearer <credential>". ok is false for
// another scheme or "Bearerx"; an empty credential after the scheme is
// returned as "" with ok, so callers refuse it as malformed instead of
// treating it as absent.
func Token(v string) (string, bool) { return schemeToken(v, "bearer") }

// DPoP returns the token of "DPoP <token>", with Token's rules.
func DPoP(v string) (string, bool) { return schemeToken(v, "dpop") }

func schemeToken(v, scheme string) (string, bool) {
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", false
	}
	rest := v[len(scheme):]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// IsAPIKey reports whether a credential is an API key by its prefix.
func IsAPIKey(credential string) bool { return strings.HasPrefix(credential, APIKeyPrefix) }

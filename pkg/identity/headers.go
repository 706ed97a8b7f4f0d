package identity

import (
	"github.com/edgeguard/edgeguard/pkg/headername"
	"net/url"
	"strconv"
	"strings"
)

// Upstream identity headers set by the edge's auth plugins. Only the
// X-Edge-Identity assertion is an input to authorization decisions in
// services; the others are informational (logs, legacy code).
const (
	HeaderUserID       = "X-User-ID"
	HeaderUsername     = "X-User-Username"
	HeaderRoles        = "X-User-Roles"
	HeaderGuest        = "X-User-Guest"
	HeaderAuthMethod   = "X-Auth-Method"
	HeaderAPIKeyID     = "X-API-Key-ID"
	HeaderEdgeIdentity = "X-Edge-Identity"
)

// reservedPrefixes and reservedNames are the identity headers the edge owns
// (compared case-insensitively, with '_' equal to '-'). A client copy of any of
// them is removed before the request goes upstream. Besides edgeguard's own
// headers the list covers what Kong's auth plugins and common auth proxies set
// (X-Consumer-*, X-Credential-*, X-Authenticated-*, X-Forwarded-User…), since a
// service behind a mixed chain might read those.
var reservedPrefixes = []string{
	"x-user-",
	"x-auth-",
	"x-consumer-",
	"x-credential-",
	"x-authenticated-",
}

var reservedNames = []string{
	"x-user",
	"x-api-key-id",
	"x-anonymous-consumer",
	"x-anonymous-groups",
	"x-edge-identity",
	"x-userinfo",
	"x-access-token",
	"x-id-token",
	"x-forwarded-user",
	"x-forwarded-email",
	"x-forwarded-groups",
	"x-forwarded-preferred-username",
	"x-forwarded-access-token",
}

// ReservedPatterns lists the reserved header names and prefixes (a trailing
// '-' marks a prefix) for documentation and tests.
func ReservedPatterns() []string {
	out := make([]string, 0, len(reservedPrefixes)+len(reservedNames))
	out = append(out, reservedPrefixes...)
	return append(out, reservedNames...)
}

// IsReserved reports whether a header with this name is an identity header
// the edge owns, in any case and with '_' in place of '-'.
func IsReserved(name string) bool {
	for _, p := range reservedPrefixes {
		if headername.HasCanonicalPrefix(name, p) {
			return true
		}
	}
	for _, n := range reservedNames {
		if headername.EqualCanonical(name, n) {
			return true
		}
	}
	return false
}

// connectionExempt are Connection tokens that are connection options or are
// managed by the proxy itself (WebSocket upgrades), not headers to strip.
var connectionExempt = []string{"close", "keep-alive", "upgrade"}

// StripList returns the names, as they appear in headers, that must be removed
// from a client request before it goes upstream: every reserved identity
// header and every header named in a Connection header (a client listing
// X-User-ID there would otherwise make a hop-by-hop-aware proxy delete the
// edge's own copy). headers maps names to values in any case. The result is
// nil when there is nothing to strip.
func StripList(headers map[string][]string) []string {
	var out []string
	var connection []string
	for name, values := range headers {
		if IsReserved(name) {
			out = append(out, name)
			continue
		}
		if headername.EqualCanonical(name, "connection") {
			connection = values
		}
	}
	for _, v := range connection {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" || IsReserved(tok) || isExempt(tok) {
				continue // reserved ones are already listed via headers
			}
			want := headername.Canonical(tok)
			for name := range headers {
				if headername.EqualCanonical(name, want) && !contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

func isExempt(tok string) bool {
	for _, e := range connectionExempt {
		if headername.EqualCanonical(tok, e) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// HeaderValue makes s safe to carry in an HTTP header value: printable ASCII
// passes unchanged; anything else (control bytes, CR/LF, non-ASCII) is
// percent-encoded, so a claim can never inject a header line.
func HeaderValue(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return url.QueryEscape(s)
		}
	}
	return s
}

// UpstreamHeaders calls set for each informational identity header of id
// (X-User-ID, X-User-Username, X-User-Roles, X-User-Guest, X-Auth-Method and,
// for API keys, X-API-Key-ID). Values go through HeaderValue. Roles are
// comma-separated. X-Edge-Identity is not produced here: it is signed by the
// edge (see package edgehttp).
func (id *Identity) UpstreamHeaders(set func(name, value string)) {
	set(HeaderUserID, HeaderValue(id.Subject))
	if id.Username != "" {
		set(HeaderUsername, HeaderValue(id.Username))
	}
	if len(id.RealmRoles) > 0 {
		roles := make([]string, len(id.RealmRoles))
		for i, r := range id.RealmRoles {
			roles[i] = strings.ReplaceAll(HeaderValue(r), ",", "%2C")
		}
		set(HeaderRoles, strings.Join(roles, ","))
	}
	set(HeaderGuest, strconv.FormatBool(id.Guest))
	set(HeaderAuthMethod, id.AuthMethod)
	if id.APIKeyID != "" {
		set(HeaderAPIKeyID, HeaderValue(id.APIKeyID))
	}
}

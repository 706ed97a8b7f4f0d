package keycloakjwt

import (
	"strings"

	"github.com/edgeguard/edgeguard/plugins/internal/bearer"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// credStatus is the outcome of looking for a token.
type credStatus uint8

const (
	credAbsent credStatus = iota
	credFound
	credDuplicate
)

// where a token was found, for hide_credentials.
type credential struct {
	token  string
	header string // lower-case header name, or "cookie"
	cookie string // cookie name when header == "cookie"
}

// credential finds the JWT of a request: Authorization: Bearer, then the
// configured headers, then the configured cookies. Two different tokens, or
// a repeated Authorization header, are a duplicate (401, never a guess at
// which one counts). A Bearer value that is an API key, or another auth
// scheme, is not a JWT credential.
func (p *Plugin) credential(headers map[string][]string) (credential, credStatus) {
	var found credential
	status := credAbsent
	add := func(c credential) bool {
		if status == credFound && found.token != c.token {
			status = credDuplicate
			return false
		}
		found, status = c, credFound
		return true
	}
	if vals := headers["authorization"]; len(vals) > 0 {
		if len(vals) > 1 {
			return credential{}, credDuplicate
		}
		if tok, ok := bearer.Token(vals[0]); ok && !bearer.IsAPIKey(tok) {
			add(credential{token: tok, header: "authorization"})
		}
	}
	for _, h := range p.headers {
		vals := headers[h]
		if len(vals) > 1 {
			return credential{}, credDuplicate
		}
		if len(vals) == 1 {
			tok := vals[0]
			if t, ok := bearer.Token(tok); ok {
				tok = t
			}
			tok = strings.TrimSpace(tok)
			if tok != "" && !bearer.IsAPIKey(tok) && !add(credential{token: tok, header: h}) {
				return credential{}, credDuplicate
			}
		}
	}
	if len(p.cookies) > 0 {
		for _, line := range headers["cookie"] {
			for part := range strings.SplitSeq(line, ";") {
				name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
				if !ok || !p.isCookie(name) || value == "" {
					continue
				}
				if !add(credential{token: value, header: "cookie", cookie: name}) {
					return credential{}, credDuplicate
				}
			}
		}
	}
	return found, status
}

func (p *Plugin) isCookie(name string) bool {
	for _, c := range p.cookies {
		if c == name {
			return true
		}
	}
	return false
}

// hideCredential removes the token from the upstream request: the header
// it came in, or just its cookie from the Cookie header.
func (p *Plugin) hideCredential(ex exchange.Exchange, headers map[string][]string, c credential) {
	if c.header != "cookie" {
		ex.ClearUpstreamHeader(c.header)
		return
	}
	var kept []string
	for _, line := range headers["cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.TrimSpace(part) == "" || p.isCookie(name) {
				continue
			}
			kept = append(kept, strings.TrimSpace(part))
		}
	}
	if len(kept) == 0 {
		ex.ClearUpstreamHeader("cookie")
		return
	}
	ex.SetUpstreamHeader("Cookie", strings.Join(kept, "; "))
}

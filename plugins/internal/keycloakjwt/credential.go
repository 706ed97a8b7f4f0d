package keycloakjwt

import (
	"strings"

	"github.com/edgeguard/edgeguard/plugins/internal/auth"
	"github.com/edgeguard/edgeguard/plugins/internal/bearer"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// where a token was found, for hide_credentials.
type credential struct {
	token  string
	header string // lower-case header name, or "cookie"
	cookie string // cookie name when header == "cookie"
	// dpop: "Authorization: DPoP <token>" (RFC 9449 §7.1); proofs are the
	// request's DPoP header values (exactly one is valid).
	dpop   bool
	proofs []string
}

// Find finds the JWT of a request: Authorization: Bearer or DPoP (with the
// request's DPoP proofs, from the same one-time header read), then the
// configured headers, then the configured cookies. Two different tokens, or
// a repeated Authorization header, are a duplicate (401, never a guess at
// which one counts). A Bearer value that is an API key, or another auth
// scheme, is not a JWT credential (not mine).
func (a *Authenticator) Find(headers map[string][]string) (auth.Credential, auth.Found) {
	var found credential
	status := auth.NotPresent
	add := func(c credential) bool {
		if status == auth.Present && found.token != c.token {
			return false
		}
		found, status = c, auth.Present
		return true
	}
	notMine := func() {
		if status == auth.NotPresent {
			status = auth.NotMine
		}
	}
	if vals := headers["authorization"]; len(vals) > 0 {
		if len(vals) > 1 {
			return nil, auth.Duplicate
		}
		if tok, ok := bearer.Token(vals[0]); ok && !bearer.IsAPIKey(tok) {
			add(credential{token: tok, header: "authorization"})
		} else if tok, ok := bearer.DPoP(vals[0]); ok {
			add(credential{token: tok, header: "authorization", dpop: true, proofs: headers["dpop"]})
		} else {
			notMine()
		}
	}
	for _, h := range a.headers {
		vals := headers[h]
		if len(vals) > 1 {
			return nil, auth.Duplicate
		}
		if len(vals) == 1 {
			tok := vals[0]
			if t, ok := bearer.Token(tok); ok {
				tok = t
			}
			tok = strings.TrimSpace(tok)
			switch {
			case tok == "":
			case bearer.IsAPIKey(tok):
				notMine()
			case !add(credential{token: tok, header: h}):
				return nil, auth.Duplicate
			}
		}
	}
	if len(a.cookies) > 0 {
		for _, line := range headers["cookie"] {
			for part := range strings.SplitSeq(line, ";") {
				name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
				if !ok || !a.isCookie(name) || value == "" {
					continue
				}
				if !add(credential{token: value, header: "cookie", cookie: name}) {
					return nil, auth.Duplicate
				}
			}
		}
	}
	if status != auth.Present {
		return nil, status
	}
	return found, status
}

func (a *Authenticator) isCookie(name string) bool {
	for _, c := range a.cookies {
		if c == name {
			return true
		}
	}
	return false
}

// Hide removes the token from the upstream request: the header it came in
// (with the DPoP proof), or just its cookie from the Cookie header
// (auth.Authenticator).
func (a *Authenticator) Hide(ex exchange.Exchange, headers map[string][]string, cred auth.Credential) {
	c := cred.(credential)
	if len(c.proofs) > 0 {
		ex.ClearUpstreamHeader("dpop")
	}
	if c.header != "cookie" {
		ex.ClearUpstreamHeader(c.header)
		return
	}
	var kept []string
	for _, line := range headers["cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.TrimSpace(part) == "" || a.isCookie(name) {
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

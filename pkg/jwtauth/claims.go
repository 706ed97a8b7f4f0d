package jwtauth

import (
	"bytes"
	"math"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// rawClaims are the claims the edge reads, still aliasing the parser's
// memory: nothing is copied until the signature has been verified.
type rawClaims struct {
	iss, sub, azp, typ, username, email, scope []byte
	aud, realmAccess, resourceAccess, guest    *fastjson.Value
	jkt                                        []byte // cnf.jkt: the token is DPoP-bound (RFC 9449)
	exp, nbf, iat                              float64
	has                                        uint32 // bit per claim present
	bad                                        bool   // wrong type or duplicate
}

// claim bits.
const (
	cIss uint32 = 1 << iota
	cSub
	cAzp
	cTyp
	cUsername
	cEmail
	cScope
	cAud
	cRealmAccess
	cResourceAccess
	cGuest
	cExp
	cNbf
	cIat
	cCnf
)

// parseClaims reads the payload, which must be a JSON object. A claim the
// edge reads that appears twice, or has the wrong JSON type, makes the token
// malformed.
func parseClaims(p *fastjson.Parser, js []byte, c *rawClaims) bool {
	v, err := p.ParseBytes(js)
	if err != nil {
		return false
	}
	o, err := v.Object()
	if err != nil {
		return false
	}
	o.Visit(func(k []byte, v *fastjson.Value) {
		var bit uint32
		switch string(k) {
		case "iss":
			bit, c.iss = cIss, str(v, &c.bad)
		case "sub":
			bit, c.sub = cSub, str(v, &c.bad)
		case "azp":
			bit, c.azp = cAzp, str(v, &c.bad)
		case "typ":
			bit, c.typ = cTyp, str(v, &c.bad)
		case "preferred_username":
			bit, c.username = cUsername, str(v, &c.bad)
		case "email":
			bit, c.email = cEmail, str(v, &c.bad)
		case "scope":
			bit, c.scope = cScope, str(v, &c.bad)
		case "aud":
			bit, c.aud = cAud, v
		case "realm_access":
			bit, c.realmAccess = cRealmAccess, v
		case "resource_access":
			bit, c.resourceAccess = cResourceAccess, v
		case "guest":
			bit, c.guest = cGuest, v
		case "exp":
			bit, c.exp = cExp, num(v, &c.bad)
		case "nbf":
			bit, c.nbf = cNbf, num(v, &c.bad)
		case "iat":
			bit, c.iat = cIat, num(v, &c.bad)
		case "cnf":
			bit, c.jkt = cCnf, confirmation(v, &c.bad)
		default:
			return
		}
		if c.has&bit != 0 {
			c.bad = true
		}
		c.has |= bit
	})
	return !c.bad
}

func str(v *fastjson.Value, bad *bool) []byte {
	b, err := v.StringBytes()
	if err != nil {
		*bad = true
	}
	return b
}

// confirmation reads the cnf claim (RFC 7800) of a DPoP-bound token: an
// object whose only member is jkt (RFC 9449 §6.1), a JWK SHA-256
// thumbprint (43 base64url characters). Any other confirmation method (an
// mTLS certificate's x5t#S256, an embedded jwk) binds the token to
// something the edge cannot check: it returns nil and the claim check
// refuses the token (ReasonConfirmation). Not an object: malformed.
func confirmation(v *fastjson.Value, bad *bool) []byte {
	o, err := v.Object()
	if err != nil {
		*bad = true
		return nil
	}
	var jkt []byte
	n := 0
	o.Visit(func(k []byte, v *fastjson.Value) {
		n++
		if string(k) == "jkt" {
			jkt, _ = v.StringBytes()
		}
	})
	if n != 1 || len(jkt) != 43 {
		return nil
	}
	for _, c := range jkt {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil
		}
	}
	return jkt
}

// num reads a NumericDate: a finite JSON number.
func num(v *fastjson.Value, bad *bool) float64 {
	if v.Type() != fastjson.TypeNumber {
		*bad = true
		return 0
	}
	f := v.GetFloat64()
	if math.IsNaN(f) || math.IsInf(f, 0) {
		*bad = true
	}
	return f
}

// check validates the time-, audience-, azp- and type-claims against the
// verifier's policy. It runs before the signature check (all are cheap and
// reveal nothing the sender did not write).
func (v *Verifier) checkClaims(c *rawClaims, now time.Time) error {
	if c.has&cExp == 0 {
		return ReasonClaimMissing
	}
	if c.has&cSub == 0 || len(c.sub) == 0 {
		return ReasonClaimMissing
	}
	nowS := float64(now.UnixNano()) / 1e9
	leeway := v.cfg.Leeway.Seconds()
	if nowS >= c.exp+leeway {
		return ReasonExpired
	}
	if c.has&cNbf != 0 && c.nbf > nowS+leeway {
		return ReasonNotYetValid
	}
	if c.has&cIat != 0 && c.iat > nowS+leeway {
		return ReasonNotYetValid
	}
	if c.has&cCnf != 0 && c.jkt == nil {
		return ReasonConfirmation
	}
	// Keycloak marks an access token "Bearer", a DPoP-bound one "DPoP"
	// (only with cnf.jkt); ID ("ID") and refresh ("Refresh") tokens are not
	// access tokens.
	if c.has&cTyp != 0 && string(c.typ) != "Bearer" && (string(c.typ) != "DPoP" || c.jkt == nil) {
		return ReasonTokenType
	}
	if !v.audienceOK(c.aud) {
		return ReasonAudience
	}
	if len(v.cfg.AllowedAZP) > 0 {
		if c.has&cAzp == 0 || !containsBytes(v.cfg.AllowedAZP, c.azp) {
			return ReasonAZP
		}
	}
	return nil
}

func (v *Verifier) audienceOK(aud *fastjson.Value) bool {
	if aud == nil {
		return false
	}
	switch aud.Type() {
	case fastjson.TypeString:
		b, _ := aud.StringBytes()
		return containsBytes(v.cfg.Audiences, b)
	case fastjson.TypeArray:
		arr, _ := aud.Array()
		for _, a := range arr {
			if b, err := a.StringBytes(); err == nil && containsBytes(v.cfg.Audiences, b) {
				return true
			}
		}
	}
	return false
}

func containsBytes(list []string, b []byte) bool {
	for _, s := range list {
		if s == string(b) {
			return true
		}
	}
	return false
}

// identityFrom copies the verified claims into a new Identity. Every string
// of the Identity is a substring of ONE string built from an arena, and every
// []string shares one backing array, so the cost is a handful of allocations
// however many roles a token carries.
func identityFrom(c *rawClaims, s *scratch) *identity.Identity {
	a := &s.arena
	a.reset()
	sub, user, email, iss, azp := a.add(c.sub), a.add(c.username), a.add(c.email), a.add(c.iss), a.add(c.azp)
	jkt := a.add(c.jkt)
	if c.realmAccess != nil {
		a.addArray(c.realmAccess.Get("roles"))
	}
	nRealm := len(a.list)
	for f := range bytes.FieldsSeq(c.scope) {
		a.list = append(a.list, a.add(f))
	}
	nScope := len(a.list) - nRealm
	if c.resourceAccess != nil {
		if o, err := c.resourceAccess.Object(); err == nil {
			o.Visit(func(client []byte, v *fastjson.Value) {
				before := len(a.list)
				name := a.add(client)
				a.addArray(v.Get("roles"))
				if len(a.list) > before {
					a.clients = append(a.clients, clientSpan{name: name, from: before, to: len(a.list)})
				}
			})
		}
	}
	arena := string(a.buf)
	str := func(sp span) string { return arena[sp.from:sp.to] }
	id := &identity.Identity{
		Subject:    str(sub),
		Username:   str(user),
		Email:      str(email),
		Issuer:     str(iss),
		ClientID:   str(azp),
		AuthMethod: identity.MethodJWT,
		ExpiresAt:  time.Unix(int64(c.exp), 0).UTC(),
	}
	if len(a.list) > 0 {
		all := make([]string, len(a.list))
		for i, sp := range a.list {
			all[i] = str(sp)
		}
		if nRealm > 0 {
			id.RealmRoles = all[:nRealm:nRealm]
		}
		if nScope > 0 {
			id.Scopes = all[nRealm : nRealm+nScope : nRealm+nScope]
		}
		if len(a.clients) > 0 {
			id.ClientRoles = make(map[string][]string, len(a.clients))
			for _, cl := range a.clients {
				id.ClientRoles[str(cl.name)] = all[cl.from:cl.to:cl.to]
			}
		}
	}
	if c.jkt != nil {
		id.Cnf = &identity.Confirmation{JKT: str(jkt)}
	}
	id.Guest = id.HasRole(identity.RoleGuest)
	if c.guest != nil {
		switch c.guest.Type() {
		case fastjson.TypeTrue:
			id.Guest = true
		case fastjson.TypeString:
			if b, _ := c.guest.StringBytes(); strings.EqualFold(string(b), "true") {
				id.Guest = true
			}
		}
	}
	return id
}

// span is a [from,to) range of the arena.
type span struct{ from, to int }

type clientSpan struct {
	name     span
	from, to int // range of arena.list holding the client's roles
}

// arena collects the bytes of an Identity's strings before one conversion.
type arena struct {
	buf     []byte
	list    []span // roles and scopes, in order: realm roles, scopes, client roles
	clients []clientSpan
}

func (a *arena) reset() {
	a.buf, a.list, a.clients = a.buf[:0], a.list[:0], a.clients[:0]
}

func (a *arena) add(b []byte) span {
	from := len(a.buf)
	a.buf = append(a.buf, b...)
	return span{from, len(a.buf)}
}

// addArray appends the string members of a JSON array (others skipped) to
// list, skipping duplicates within this array.
func (a *arena) addArray(v *fastjson.Value) {
	if v == nil {
		return
	}
	arr, err := v.Array()
	if err != nil {
		return
	}
	first := len(a.list)
next:
	for _, e := range arr {
		b, err := e.StringBytes()
		if err != nil {
			continue
		}
		for _, sp := range a.list[first:] {
			if string(a.buf[sp.from:sp.to]) == string(b) {
				continue next
			}
		}
		a.list = append(a.list, a.add(b))
	}
}

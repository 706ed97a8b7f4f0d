package headerguard

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/requestid"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

// FuzzHandle sends random header names, values, Connection lists and
// request ids through header-guard on the fake and checks its promises:
// it never panics, never lets a reserved header (in any spelling, or one
// named in Connection) through, and always leaves a valid request id.
func FuzzHandle(f *testing.F) {
	seeds := []struct{ names, values, connection, rid string }{
		{"X-User-ID\nx_user_id\nX_AUTH_METHOD", "admin\nadmin\njwt", "", ""},
		{"X-User-\u0130D\nX-User-\u212aey\nx-user-\u0131d", "a\nb\nc", "X-User-\u0130D", "abc"},
		{"X-Foo", strings.Repeat("v", 10<<10), "X-Foo, keep-alive", ""},
		{"X-Big\nX-Big2\nX-Big3\nX-Big4", strings.Repeat("v", 10<<10) + "\n" + strings.Repeat("w", 10<<10) +
			"\n" + strings.Repeat("x", 10<<10) + "\n" + strings.Repeat("y", 10<<10), "", ""},
		{"X-Request-ID\nX_Request_ID\nx_request_id", "good\nevil\nevil2", "", ""},
		{"X-Evil\r\nX-User-ID\nX-Auth-Method\r", "a\r\nX-User-ID: admin\nb", "X-User-ID\r\n", "abc\r\nX-User-ID: x"},
		{"X-A\nx_b\nX-C\nUpgrade", "1\n2\n3\nwebsocket", "X-A,X-B , ,x-c,close,Upgrade,,", ""},
		{"Connection\nX-Edge-Identity\nX-Consumer-Custom-ID", "X-Debug\nforged\nc", "x-edge-identity", ""},
		{"", "", "", "r\u00e9q"},
		{"", "", "", strings.Repeat("a", 129)},
		{"X-Userinfo\nX-Forwarded-User\nX-Credential-Identifier\nX-Anonymous-Consumer", "1\n2\n3\n4", "", "ok"},
		// the attack run's audit suppression: credential-shaped request ids
		{"", "", "", "sk_rt1234"},
		{"", "", "", "eyJrt.ab12.x"},
		{"X-Request-ID", "eyJrt.ab12.x", "", "sk_live_Ab3dE5g7_secret"},
	}
	for _, s := range seeds {
		f.Add(s.names, s.values, s.connection, s.rid)
	}
	f.Fuzz(checkHandle)
}

// TestRandomHeadersKeepThePromises runs FuzzHandle's checks on inputs drawn
// from an alphabet of header-name tricks (a fixed seed: reproducible).
func TestRandomHeadersKeepThePromises(t *testing.T) {
	atoms := []string{"X-User-", "x_user_", "X-Auth-", "ID", "id", "\u0130", "\u212a", "-", "_", ",", " ",
		"\r\n", "\n", "Request", "X-Request-ID", "x_request_id", "Connection", "keep-alive", "close",
		"X-Edge-Identity", "X-Consumer-", "a", "Z", ":", "\x00", "\xff", "Upgrade", "X-Api-Key-Id", "sk_", "eyJ", "."}
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		var b strings.Builder
		for range r.IntN(6) {
			b.WriteString(atoms[r.IntN(len(atoms))])
		}
		return b.String()
	}
	for range 3000 {
		checkHandle(t, word(), word(), word(), word())
	}
}

func checkHandle(t *testing.T, names, values, connection, rid string) {
	t.Helper()
	headers := map[string][]string{}
	vals := strings.Split(values, "\n")
	for i, name := range strings.Split(names, "\n") {
		if name == "" {
			continue
		}
		v := ""
		if i < len(vals) {
			v = vals[i]
		}
		headers[name] = append(headers[name], v)
	}
	if connection != "" {
		headers["Connection"] = append(headers["Connection"], connection)
	}
	if rid != "" {
		headers["X-Request-ID"] = append(headers["X-Request-ID"], rid)
	}
	fk := exchange.NewFake("GET", "/", headers)
	guard(t, &Config{}).Handle(fk)

	if fk.Exited() {
		code := errorCode(t, fk.ExitBody)
		if fk.ExitStatus != 431 || (code != pipeline.CodeTooManyHeaders && code != CodeHeadersTooLarge) {
			t.Fatalf("exit %d %s", fk.ExitStatus, fk.ExitBody)
		}
		if rid := fk.ExitHeaders[HeaderRequestID]; !requestid.Valid(rid) || requestid.LooksLikeCredential(rid) {
			t.Fatalf("431 request id %q", fk.ExitHeaders[HeaderRequestID])
		}
		return
	}

	h := fk.Headers()
	var tokens []string
	for _, v := range h["connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			switch canonicalName(tok) {
			case "", "close", "keep-alive", "upgrade":
				continue
			}
			tokens = append(tokens, canonicalName(tok))
		}
	}
	for name := range h {
		canon := canonicalName(name)
		mustGo := identity.IsReserved(name) || (canon == "x-request-id" && strings.Contains(name, "_"))
		for _, tok := range tokens {
			mustGo = mustGo || tok == canon
		}
		if mustGo && !fk.WasCleared(name) {
			t.Fatalf("%q reached the upstream (headers %q, cleared %q)", name, h, fk.Cleared)
		}
	}
	for name := range fk.Upstream {
		if name != HeaderRequestID {
			t.Fatalf("unexpected upstream header %q", name)
		}
	}
	id := fk.Upstream[HeaderRequestID]
	if !requestid.Valid(id) || requestid.LooksLikeCredential(id) || fk.Response[HeaderRequestID] != id {
		t.Fatalf("request id upstream %q response %q", id, fk.Response[HeaderRequestID])
	}
	if client := fk.Header("x-request-id"); requestid.Valid(client) && id != client {
		t.Fatalf("valid client request id %q replaced by %q", client, id)
	}
}

func canonicalName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 32
		case c == '_':
			b[i] = '-'
		}
	}
	return string(b)
}

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The client address is decided once, by the edge (docs/architecture.md
// "Client IP"): Kong's trusted_ips / real_ip rules pick the rightmost
// X-Forwarded-For address that is not a trusted proxy (the e2e stack trusts
// the loopback peer 127.0.0.1), and the upstream gets that one address as its
// X-Forwarded-For — not the client's chain with the peer appended, which is
// what Kong sends on its own and what let a client choose the address the
// services (and Keycloak, which reads the leftmost entry) saw.

// TestClientIPIsDecidedOnceByTheEdge: through the real Kong, a client
// behind the trusted peer that sends the chain "198.18.0.9, <client>" is
// <client> everywhere — the one X-Forwarded-For address the upstream
// receives, and the guest.created audit event — and a client whose peer
// Kong does not trust cannot choose its address with X-Forwarded-For, at
// the upstream, in the audit event, nor directly at llm-api.
func TestClientIPIsDecidedOnceByTheEdge(t *testing.T) {
	_, e := requireEdge(t)

	t.Run("a trusted peer's chain: one address upstream, the rightmost untrusted", func(t *testing.T) {
		client := clientAddr()
		chain := "198.18.0.9, " + client
		rid := "cip-chain-" + randHex(6)
		stop := e.keycloak.Tap(1 << 20)
		a := e.do(t, http.MethodGet, "/realms/jan/.well-known/openid-configuration", "", nil, http.Header{
			"Host": {e.publicHost()}, "X-Forwarded-For": {chain}, "X-Request-ID": {rid}})
		tapped := stop()
		t.Logf("discovery through the gateway: %d", a.status) // 403 when Keycloak sees a public address over http
		if got := forwardedFor(t, tapped, rid); !slices.Equal(got, []string{client}) {
			t.Errorf("X-Forwarded-For at the upstream %q, want exactly [%s] (the client's chain %q)", got, client, chain)
		}

		rid = "cip-guest-" + randHex(6)
		if a := e.do(t, http.MethodPost, "/auth/guest-login", "", nil, http.Header{
			"X-Forwarded-For": {chain}, "X-Request-ID": {rid}}); a.status != http.StatusOK {
			t.Fatalf("guest login: %d %s", a.status, a.body)
		} else {
			addTokens(a.body)
		}
		if rows := e.auditRows(t, rid); len(rows) != 1 || rows[0].action != "guest.created" || rows[0].clientIP != client {
			t.Errorf("the guest.created event: %+v, want client_ip %s", rows, client)
		}
	})

	t.Run("an untrusted peer cannot choose its address", func(t *testing.T) {
		peer := loopbackPeer()
		forged := "198.18.0.9"
		rid := "cip-forged-" + randHex(6)
		stop := e.keycloak.Tap(1 << 20)
		a := e.doFrom(t, peer, http.MethodGet, e.gw+"/realms/jan/.well-known/openid-configuration", http.Header{
			"Host": {e.publicHost()}, "X-Forwarded-For": {forged}, "X-Request-ID": {rid}})
		tapped := stop()
		t.Logf("discovery through the gateway: %d", a.status) // 403 when Keycloak sees a public address over http
		if got := forwardedFor(t, tapped, rid); !slices.Equal(got, []string{peer}) {
			t.Errorf("X-Forwarded-For at the upstream %q, want exactly [%s] (the peer; the client sent %q)", got, peer, forged)
		}

		for name, base := range map[string]string{"through the gateway": e.gw, "directly at llm-api": e.Env["LLM_API_URL"]} {
			rid := "cip-forged-guest-" + randHex(6)
			a := e.doFrom(t, peer, http.MethodPost, base+"/auth/guest-login", http.Header{
				"X-Forwarded-For": {forged}, "X-Request-ID": {rid}})
			if a.status != http.StatusOK {
				t.Fatalf("guest login %s: %d %s", name, a.status, a.body)
			}
			addTokens(a.body)
			if rows := e.auditRows(t, rid); len(rows) != 1 || rows[0].clientIP != peer {
				t.Errorf("guest login %s from %s claiming %s: event %+v, want client_ip %s", name, peer, forged, rows, peer)
			}
		}
	})
}

// publicHost is the gateway's public host (GATEWAY_PUBLIC_URL,
// localhost:<port>): the only Host the Keycloak routes answer.
func (e *edgeStack) publicHost() string {
	u, err := url.Parse(e.Env["GATEWAY_PUBLIC_URL"])
	if err != nil || u.Host == "" {
		panic(fmt.Sprintf("the dev stack printed no usable GATEWAY_PUBLIC_URL: %q", e.Env["GATEWAY_PUBLIC_URL"]))
	}
	return u.Host
}

// loopbackPeer is a random loopback address other than 127.0.0.1: a peer
// that neither Kong (trusted_ips 127.0.0.1) nor the services
// (TRUSTED_PROXIES 127.0.0.1) trust. Linux routes all of 127/8 to lo.
func loopbackPeer() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("127.0.%d.%d", 1+int(b[0])%254, 2+int(b[1])%252)
}

// doFrom sends one request without a body to rawURL from the local address
// src. A "Host" in header becomes the request's Host.
func (e *edgeStack) doFrom(t *testing.T, src, method, rawURL string, header http.Header) answer {
	t.Helper()
	return e.doFromBody(t, src, method, rawURL, header, nil)
}

// doFromBody is doFrom with a body.
func (e *edgeStack) doFromBody(t *testing.T, src, method, rawURL string, header http.Header, body io.Reader) answer {
	t.Helper()
	a, err := e.sendFrom(t, src, method, rawURL, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sendFrom is doFromBody without failing the test (for other goroutines
// than the test's).
func (e *edgeStack) sendFrom(t *testing.T, src, method, rawURL string, header http.Header, body io.Reader) (answer, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return answer{}, err
	}
	for k, vs := range header {
		if k == "Host" {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	if strings.HasPrefix(rawURL, "https://") {
		// a service's mTLS listener: the edge's client certificate
		tr.TLSClientConfig = e.edgeTLS(t, serviceOf(e, rawURL))
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s from %s: %w", method, rawURL, src, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{resp.StatusCode, resp.Header, b}, nil
}

// forwardedFor finds the request with X-Request-ID rid in what a fault
// proxy tapped and returns its X-Forwarded-For addresses, every line and
// entry in order. It fails the test when no request carries rid.
func forwardedFor(t *testing.T, tapped [][]byte, rid string) []string {
	t.Helper()
	for _, stream := range tapped {
		for _, head := range bytes.Split(stream, []byte("\r\n\r\n")) {
			var xff []string
			found := false
			for _, line := range strings.Split(string(head), "\r\n") {
				name, value, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				value = strings.TrimSpace(value)
				switch strings.ToLower(name) {
				case "x-request-id":
					found = found || value == rid
				case "x-forwarded-for":
					for _, v := range strings.Split(value, ",") {
						xff = append(xff, strings.TrimSpace(v))
					}
				}
			}
			if found {
				return xff
			}
		}
	}
	t.Fatalf("no request with X-Request-ID %s reached the upstream (%d connections tapped)", rid, len(tapped))
	return nil
}

// addTokens records the tokens of a token answer for the secrets sweep.
func addTokens(body []byte) {
	for _, k := range []string{`"access_token":"`, `"refresh_token":"`} {
		if _, rest, ok := bytes.Cut(body, []byte(k)); ok {
			if tok, _, ok := bytes.Cut(rest, []byte(`"`)); ok {
				used.add(string(tok))
			}
		}
	}
}

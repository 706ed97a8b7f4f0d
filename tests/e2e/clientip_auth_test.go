package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forgedAddr is the address the clients below claim in every header a
// client could use to name itself.
const forgedAddr = "198.18.7.7"

// TestAuthenticatedRoutesRecordTheAddressTheEdgeDecided: on authenticated
// routes the client address travels signed in the edge assertion (claim
// cip), which the services prefer for their audit events and request logs.
// Through the real Kong, a user (JWT: POST and DELETE /auth/api-keys, the
// apikey.created and apikey.revoked events llm-api stores in PostgreSQL)
// and an API key (GET /v1/models, llm-api's request log line) each send
// forged client addresses — X-Forwarded-For with one entry, several
// entries and two header lines, X-Real-IP, Forwarded: for=, all at once —
// and llm-api records the address Kong decided, never the forged one: the
// TCP peer when Kong does not trust it (a loopback address other than
// 127.0.0.1), the rightmost untrusted X-Forwarded-For entry behind the
// trusted peer 127.0.0.1 and behind balancerAddr, which Kong trusts and
// llm-api does not (as in production: Kong trusts the load balancers, the
// services only Kong).
//
// Before the fix (no cip, no client-ip: Kong sent "client's chain, peer"
// and llm-api walked it with its own TRUSTED_PROXIES) the client behind the
// balancer was recorded as the balancer. It also fails if the edge signs a
// client-chosen cip (e.g. the raw X-Forwarded-For) or a service reads
// X-Real-IP, Forwarded or a leftmost entry. Kong → services is mTLS and no
// route echoes a request, so the assertion itself is not seen here, only
// what llm-api records from it; through the real Kong the upstream's one
// X-Forwarded-For address equals cip (client-ip), so which of the two a
// service reads is left to its unit tests (llm-api
// TestAuditTakesTheClientAddressFromTheEdgeAssertion, ginedge
// TestClientIPIsTheEdgesOnAuthenticatedRoutes).
func TestAuthenticatedRoutesRecordTheAddressTheEdgeDecided(t *testing.T) {
	s, e := requireEdge(t)
	_, jwt := e.userToken(t, s)
	keyID, key := e.apiKey(t, jwt, "cip-"+randHex(4))
	defer e.revokeKey(t, jwt, keyID)

	peer := loopbackPeer() // Kong trusts only 127.0.0.1
	behind := clientAddr() // a client behind the trusted peer
	allForged := http.Header{
		"X-Forwarded-For":  {forgedAddr + ", 198.18.7.8"},
		"X-Real-IP":        {forgedAddr},
		"Forwarded":        {"for=" + forgedAddr + ";proto=https"},
		"X-Client-IP":      {forgedAddr},
		"True-Client-IP":   {forgedAddr},
		"CF-Connecting-IP": {forgedAddr},
	}
	cases := []struct {
		name     string
		src      string // the TCP peer Kong sees
		header   http.Header
		want     string
		wantNote string
	}{
		{"untrusted peer, X-Forwarded-For", peer, http.Header{"X-Forwarded-For": {forgedAddr}}, peer, "the peer"},
		{"untrusted peer, several X-Forwarded-For entries", peer,
			http.Header{"X-Forwarded-For": {forgedAddr + ", 198.18.7.8, " + behind}}, peer, "the peer"},
		{"untrusted peer, two X-Forwarded-For lines", peer,
			http.Header{"X-Forwarded-For": {forgedAddr, "198.18.7.8"}}, peer, "the peer"},
		{"untrusted peer, X-Real-IP", peer, http.Header{"X-Real-IP": {forgedAddr}}, peer, "the peer"},
		{"untrusted peer, Forwarded for=", peer, http.Header{"Forwarded": {"for=" + forgedAddr}}, peer, "the peer"},
		{"untrusted peer, all at once", peer, allForged, peer, "the peer"},
		{"trusted peer, a chain ending in the client", "127.0.0.1",
			http.Header{"X-Forwarded-For": {forgedAddr + ", " + behind}}, behind, "the rightmost untrusted entry"},
		{"trusted peer, a chain and the other headers", "127.0.0.1", func() http.Header {
			h := allForged.Clone()
			h["X-Forwarded-For"] = []string{forgedAddr + ", " + behind}
			return h
		}(), behind, "the rightmost untrusted entry"},
		{"trusted peer, no X-Forwarded-For but X-Real-IP and Forwarded", "127.0.0.1",
			http.Header{"X-Real-IP": {forgedAddr}, "Forwarded": {"for=" + forgedAddr}}, "127.0.0.1", "the peer"},
		// Kong trusts the balancer, llm-api does not: a service walking the
		// chain itself (before the fix: Kong sent "chain, balancer") would
		// record the balancer.
		{"behind the balancer Kong trusts, a chain ending in the client", balancerAddr,
			http.Header{"X-Forwarded-For": {forgedAddr + ", " + behind}}, behind, "the rightmost entry Kong does not trust"},
		{"behind the balancer Kong trusts, a chain and the other headers", balancerAddr, func() http.Header {
			h := allForged.Clone()
			h["X-Forwarded-For"] = []string{forgedAddr + ", 198.18.7.8, " + behind}
			return h
		}(), behind, "the rightmost entry Kong does not trust"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A user's key creation and revocation: llm-api's audit events.
			rid := "cip-auth-" + randHex(6)
			h := c.header.Clone()
			h.Set("Authorization", "Bearer "+jwt)
			h.Set("Content-Type", "application/json")
			h.Set("X-Request-ID", rid)
			a := e.doFromBody(t, c.src, http.MethodPost, e.gw+"/auth/api-keys", h,
				strings.NewReader(`{"name":"cip-`+randHex(4)+`"}`))
			if a.status != http.StatusCreated {
				t.Fatalf("create a key from %s: %d %s", c.src, a.status, a.body)
			}
			var k struct {
				ID  string `json:"id"`
				Key string `json:"key"`
			}
			if err := json.Unmarshal(a.body, &k); err != nil || k.ID == "" {
				t.Fatalf("the created key: %v", err)
			}
			used.add(k.Key)
			h.Del("Content-Type")
			ridRevoke := "cip-auth-" + randHex(6)
			h.Set("X-Request-ID", ridRevoke)
			if a := e.doFrom(t, c.src, http.MethodDelete, e.gw+"/auth/api-keys/"+k.ID, h); a.status != http.StatusNoContent {
				t.Fatalf("revoke the key from %s: %d %s", c.src, a.status, a.body)
			}
			for action, rid := range map[string]string{"apikey.created": rid, "apikey.revoked": ridRevoke} {
				rows := e.auditRows(t, rid)
				if len(rows) != 1 || rows[0].action != action || rows[0].source != "llm-api" || rows[0].clientIP != c.want {
					t.Errorf("%s from %s: events %+v, want one with client_ip %s (%s)", action, c.src, rows, c.want, c.wantNote)
				}
			}

			// An API key's request: llm-api's request log.
			rid = "cip-key-" + randHex(6)
			h = c.header.Clone()
			h.Set("Authorization", "Bearer "+key)
			h.Set("X-Request-ID", rid)
			if a := e.doFrom(t, c.src, http.MethodGet, e.gw+"/v1/models", h); a.status != http.StatusOK {
				t.Fatalf("GET /v1/models with an API key from %s: %d %s", c.src, a.status, a.body)
			}
			if got := e.requestLogClientIP(t, "llm-api", rid); got != c.want {
				t.Errorf("llm-api logged client_ip %q for the API key's request from %s, want %s (%s)", got, c.src, c.want, c.wantNote)
			}
		})
	}
}

// revokeKey revokes the API key id of jwt's holder through the gateway.
func (e *edgeStack) revokeKey(t *testing.T, jwt, id string) {
	t.Helper()
	if a := e.do(t, http.MethodDelete, "/auth/api-keys/"+id, jwt, nil, nil); a.status != http.StatusNoContent {
		t.Errorf("revoke API key %s: %d %s", id, a.status, a.body)
	}
}

// requestLogClientIP waits up to 5 s for service's request log line of the
// request rid (DEV_LOGS/<service>.log, one JSON object a line) and returns
// its client_ip.
func (e *edgeStack) requestLogClientIP(t *testing.T, service, rid string) string {
	t.Helper()
	path := filepath.Join(e.Env["DEV_LOGS"], service+".log")
	var got string
	found := eventually(5*time.Second, func() bool {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		needle := []byte(fmt.Sprintf(`"request_id":%q`, rid))
		for sc.Scan() {
			if !bytes.Contains(sc.Bytes(), needle) {
				continue
			}
			var line struct {
				Message  string `json:"message"`
				ClientIP string `json:"client_ip"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "request" {
				got = line.ClientIP
				return true
			}
		}
		return false
	})
	if !found {
		t.Fatalf("no request log line with request_id %s in %s within 5 s", rid, path)
	}
	return got
}

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log"
	"strconv"
	"sync"
	"time"

	"github.com/Kong/go-pdk"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

// The all-in-one plugin's PDK calls on a cached JWT (plugins/edgeguard
// README "PDK calls"), with payloads of the same names and sizes, built once:
// replaying them costs the protocol what the plugin's calls cost it, with
// none of the plugin's own work (no verification, no signature, no Redis).
var (
	replayOnce                  sync.Once
	replayIdentity              string              // kong.ctx.shared value
	replayUpstream, replayReply map[string][]string // service.request.set_headers, response.set_headers
)

func buildReplay() {
	id := &identity.Identity{Subject: "bench-user", Username: "bench-bench-user", Email: "bench-user@bench.invalid",
		Issuer: "http://127.0.0.1:1/realms/bench", ClientID: "jan-cli", RealmRoles: []string{"user", "offline_access"},
		Scopes: []string{"openid", "profile", "email"}, AuthMethod: identity.MethodJWT, ExpiresAt: time.Now().Add(24 * time.Hour)}
	b, _ := json.Marshal(id)
	replayIdentity = string(b)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := edgeid.NewSigner(key, "")
	if err != nil {
		log.Fatal(err)
	}
	assertion, err := s.Sign(id, "llm-api", "GET", "/", time.Now())
	if err != nil {
		log.Fatal(err)
	}
	var rid [16]byte
	_, _ = rand.Read(rid[:])
	reqID := hex.EncodeToString(rid[:])
	replayUpstream = map[string][]string{"X-Request-ID": {reqID}, identity.HeaderEdgeIdentity: {assertion}}
	id.UpstreamHeaders(func(name, value string) { replayUpstream[name] = []string{value} })
	replayReply = map[string][]string{"X-Request-ID": {reqID}, "RateLimit-Limit": {"1000000"},
		"RateLimit-Remaining": {"999999"}, "RateLimit-Reset": {"1"},
		"x-ratelimit-limit-requests": {"1000000"}, "x-ratelimit-remaining-requests": {"999999"}, "x-ratelimit-reset-requests": {"1ms"}}
	for w, limit := range map[string]int{"Second": 1000000, "Minute": 60000000, "Hour": 1000000000} {
		replayReply["X-RateLimit-Limit-"+w] = []string{strconv.Itoa(limit)}
		replayReply["X-RateLimit-Remaining-"+w] = []string{strconv.Itoa(limit - 1)}
	}
}

// replay makes the six calls in the plugin's order, waiting wait after the
// third; a failed call ends it.
func replay(kong *pdk.PDK, wait time.Duration) {
	replayOnce.Do(buildReplay)
	if _, err := kong.Request.GetHeaders(101); err != nil {
		return
	}
	if _, err := kong.Request.GetMethod(); err != nil {
		return
	}
	if _, err := kong.Request.GetPath(); err != nil {
		return
	}
	if wait > 0 {
		time.Sleep(wait)
	}
	if err := kong.Ctx.SetShared("edgeguard.identity", replayIdentity); err != nil {
		return
	}
	if err := kong.ServiceRequest.SetHeaders(replayUpstream); err != nil {
		return
	}
	_ = kong.Response.SetHeaders(replayReply)
}

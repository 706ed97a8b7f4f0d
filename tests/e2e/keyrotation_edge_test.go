package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

// TestKeyPublishedAfterAnUnknownKidIsAcceptedAtTheEdgesNextRefresh is the
// attack run's key-rotation blind spot (item 4) through the real Kong and
// the real Keycloak, in real time. A token signed with a key Keycloak does
// not publish yet is refused unknown_kid at t=0, and the edge fetches the
// JWKS for it once; Keycloak publishes the key at t=2 s; at t=5 s the token
// is still refused without a fetch (inside the edge's min refresh interval:
// kong.yml's jwt sections leave min_refresh_interval_seconds unset, so
// keycloak-jwt's default 10 s, jwtauth.DefaultMinRefreshInterval); at the
// min refresh interval + 1.5 s the edge fetches once more and the token is
// accepted (200). Before the fix the kid was negative-cached at its first
// refusal (after the fetch its own request triggered) and stayed refused
// until the 5-minute background refresh.
//
// The key is the test's own: an RSA-2048 key imported into realm jan as an
// "rsa" key provider, disabled (not published) at first, then enabled as a
// passive key — published in the JWKS, never the realm's signing key — and
// removed at the end, so nothing else that uses the realm notices. JWKS
// fetches are counted on Keycloak's fault proxy, which every process of the
// stack reaches Keycloak through. Another fetch in the window (a service's
// or the edge's own 5-minute refresh) changes what the edge knows: the
// timeline then starts over once with a fresh key.
func TestKeyPublishedAfterAnUnknownKidIsAcceptedAtTheEdgesNextRefresh(t *testing.T) {
	s, e := requireEdge(t)
	_, jwt := e.userToken(t, s)
	minRefresh := edgeMinRefreshInterval(t)
	if minRefresh > 20*time.Second {
		t.Fatalf("kong.yml's min_refresh_interval_seconds is %v: this test's timeline assumes at most 20 s", minRefresh)
	}
	claims := segment(t, jwt, 1) // a real access token of realm jan: its claims, re-signed
	for attempt := 1; ; attempt++ {
		r := rotationTimeline(t, s, e, claims, minRefresh)
		if r == timelineDone {
			return
		}
		if attempt == 2 {
			t.Fatal("the timeline was disturbed twice by JWKS fetches the test did not cause")
		}
	}
}

type timelineResult int

const (
	timelineDone timelineResult = iota
	timelineDisturbed
)

func rotationTimeline(t *testing.T, s *suite, e *edgeStack, claims map[string]any, minRefresh time.Duration) timelineResult {
	t.Helper()
	ctx := context.WithoutCancel(s.ctx)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	used.add(keyPEM)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	kid := base64.RawURLEncoding.EncodeToString(sum[:]) // Keycloak's kid of an RSA key

	realmID, err := s.kc.RealmID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	component := map[string]any{
		"name":         "e2e-unpublished-" + randHex(4),
		"providerId":   "rsa",
		"providerType": "org.keycloak.keys.KeyProvider",
		"parentId":     realmID,
		"config": map[string][]string{
			"privateKey": {keyPEM}, "algorithm": {"RS256"}, "priority": {"-100"},
			"enabled": {"false"}, "active": {"false"}, // never active: never jan's signing key
		},
	}
	h, err := s.kc.Admin(ctx, http.MethodPost, "/components", component, nil)
	if err != nil {
		t.Fatalf("import the key as a disabled rsa key provider: %v", err)
	}
	loc := h.Get("Location")
	componentID := loc[strings.LastIndexByte(loc, '/')+1:]
	removed := false
	remove := func() {
		if !removed {
			removed = true
			if _, err := s.kc.Admin(ctx, http.MethodDelete, "/components/"+componentID, nil, nil); err != nil {
				t.Errorf("remove the test's key provider: %v", err)
			}
		}
	}
	t.Cleanup(remove)
	defer remove()
	if st := realmKeyStatus(t, s, componentID); st.kid != kid || st.status != "DISABLED" || st.activeRS256 == kid {
		t.Fatalf("the imported key: kid %q status %q (active RS256 %q), want kid %q DISABLED and not active", st.kid, st.status, st.activeRS256, kid)
	}
	if published(t, kid) {
		t.Fatal("Keycloak publishes the disabled key")
	}

	now := time.Now()
	tok := signRS256(t, key, kid, claims, now)
	get := func() answer {
		t.Helper()
		return e.do(t, http.MethodGet, "/v1/models", tok, nil, nil)
	}
	stop := e.keycloak.Tap(1 << 20)
	checkpoint := func() int { // JWKS fetches since the last checkpoint
		n := countJWKSFetches(stop())
		stop = e.keycloak.Tap(1 << 20)
		return n
	}
	defer func() { stop() }()
	_ = checkpoint() // nothing before t=0 counts

	// t=0: unknown kid → one JWKS fetch, refused.
	t0 := time.Now()
	a := get()
	fetches := checkpoint()
	if a.status != http.StatusUnauthorized {
		t.Fatalf("t=0, kid not published: %d %s, want 401", a.status, a.body)
	}
	if fetches != 1 {
		// None: the edge fetched less than the min refresh interval ago (its
		// key set is created, and fetched, at the first JWT request of the
		// run; or another request's unknown kid). More: a service's refresh
		// too. Start over with a fresh kid once a fetch is allowed (this kid
		// would now be negative-cached by the next fetch, rightly).
		t.Logf("t=0: %d JWKS fetches instead of the edge's one; starting over with a fresh key in %v", fetches, minRefresh)
		remove()
		time.Sleep(time.Until(t0.Add(minRefresh + 500*time.Millisecond)))
		return timelineDisturbed
	}
	t.Logf("t=0: 401 %s, the edge fetched the JWKS once (%v)", a.code(), time.Since(t0).Round(time.Millisecond))

	// t=2 s: Keycloak publishes the key (enabled, passive).
	time.Sleep(time.Until(t0.Add(2 * time.Second)))
	component["id"] = componentID
	component["config"].(map[string][]string)["enabled"] = []string{"true"}
	if _, err := s.kc.Admin(ctx, http.MethodPut, "/components/"+componentID, component, nil); err != nil {
		t.Fatalf("enable the key as passive: %v", err)
	}
	if st := realmKeyStatus(t, s, componentID); st.status != "PASSIVE" || st.activeRS256 == kid || !published(t, kid) {
		t.Fatalf("the enabled key: status %q, active RS256 is it: %t, published: %t; want PASSIVE, published, not active",
			st.status, st.activeRS256 == kid, published(t, kid))
	}
	t.Logf("t=%v: Keycloak publishes the key (passive)", time.Since(t0).Round(time.Millisecond))

	// t=5 s: inside the min refresh interval: refused, no fetch.
	time.Sleep(time.Until(t0.Add(5 * time.Second)))
	a = get()
	fetches = checkpoint()
	if fetches != 0 {
		t.Logf("t=5 s: %d JWKS fetches the test did not cause (a refresh of the edge or a service); starting over with a fresh key", fetches)
		remove()
		time.Sleep(time.Until(time.Now().Add(minRefresh + 500*time.Millisecond)))
		return timelineDisturbed
	}
	if a.status != http.StatusUnauthorized {
		t.Fatalf("t=5 s, inside the min refresh interval (%v): %d %s, want 401 without a JWKS fetch", minRefresh, a.status, a.body)
	}
	t.Logf("t=%v: 401 %s, no JWKS fetch (min refresh interval %v)", time.Since(t0).Round(time.Millisecond), a.code(), minRefresh)

	// t = min refresh interval + 1.5 s: the next allowed refresh finds it.
	time.Sleep(time.Until(t0.Add(minRefresh + 1500*time.Millisecond)))
	at := time.Since(t0)
	a = get()
	fetches = checkpoint()
	if a.status != http.StatusOK {
		t.Fatalf("t=%v, after the min refresh interval: %d %s, want 200 (the kid was negative-cached at its first refusal?)",
			at.Round(time.Millisecond), a.status, a.body)
	}
	if fetches < 1 { // more: a service's own refresh in the same second
		t.Errorf("t=%v: 200 without a JWKS fetch", at.Round(time.Millisecond))
	}
	t.Logf("t=%v: 200 after %d JWKS fetch(es)", at.Round(time.Millisecond), fetches)
	return timelineDone
}

// edgeMinRefreshInterval is the edge's min JWKS refresh interval: kong.yml's
// min_refresh_interval_seconds (the same in every jwt section), else the
// plugin's default.
func edgeMinRefreshInterval(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("../../kong/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, m := range regexp.MustCompile(`(?m)^\s*min_refresh_interval_seconds:\s*(\d+)`).FindAllSubmatch(b, -1) {
		vals = append(vals, string(m[1]))
	}
	if len(vals) == 0 {
		return jwtauth.DefaultMinRefreshInterval
	}
	slices.Sort(vals)
	if vals = slices.Compact(vals); len(vals) != 1 {
		t.Fatalf("kong.yml's jwt sections set different min_refresh_interval_seconds: %v", vals)
	}
	n, _ := strconv.Atoi(vals[0])
	return time.Duration(n) * time.Second
}

// keyStatus is what the admin API says of one key provider's key.
type keyStatus struct{ kid, status, activeRS256 string }

func realmKeyStatus(t *testing.T, s *suite, componentID string) keyStatus {
	t.Helper()
	var keys struct {
		Active map[string]string `json:"active"`
		Keys   []struct {
			ProviderID string `json:"providerId"`
			KID        string `json:"kid"`
			Status     string `json:"status"`
		} `json:"keys"`
	}
	if _, err := s.kc.Admin(context.WithoutCancel(s.ctx), http.MethodGet, "/keys", nil, &keys); err != nil {
		t.Fatal(err)
	}
	st := keyStatus{activeRS256: keys.Active["RS256"]}
	for _, k := range keys.Keys {
		if k.ProviderID == componentID {
			st.kid, st.status = k.KID, k.Status
		}
	}
	return st
}

// published reports whether Keycloak's JWKS (read directly, not through
// the fault proxy the edge uses) holds kid.
func published(t *testing.T, kid string) bool {
	t.Helper()
	resp, err := http.Get(os.Getenv("KEYCLOAK_JWKS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(set.Keys, func(k struct {
		KID string `json:"kid"`
	}) bool {
		return k.KID == kid
	})
}

// signRS256 signs claims (a real access token's, with a fresh jti, iat and
// exp) as a compact JWS with key under kid, as Keycloak would.
func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any, now time.Time) string {
	t.Helper()
	c := make(map[string]any, len(claims))
	for k, v := range claims {
		c[k] = v
	}
	delete(c, "cnf")
	c["jti"] = "e2e-" + randHex(8)
	c["iat"], c["exp"] = now.Unix(), now.Add(10*time.Minute).Unix()
	head, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	tok := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	used.add(tok)
	return tok
}

// countJWKSFetches counts the JWKS requests of realm jan in what a fault
// proxy tapped.
func countJWKSFetches(tapped [][]byte) int {
	n := 0
	for _, b := range tapped {
		n += len(jwksRequest.FindAllIndex(b, -1))
	}
	return n
}

var jwksRequest = regexp.MustCompile(`(?m)^GET /realms/jan/protocol/openid-connect/certs[ ?]`)

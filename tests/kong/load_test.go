package kong

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
)

// kind is the credential a load request carries.
type kind string

const (
	kindValid   kind = "valid"   // a token of the test's IdP, role user
	kindMissing kind = "missing" // no credential at all
	kindForged  kind = "forged"  // the IdP's kid and claims, signed by another key
	kindExpired kind = "expired" // the IdP's key, expired an hour ago
)

var kinds = []kind{kindValid, kindMissing, kindForged, kindExpired}

// credentials are the tokens of the load.
type credentials struct {
	valid, forged, expired string
}

// newCredentials mints the load's tokens (registered for the secret sweep
// by jwttest).
func newCredentials(t testing.TB, p *jwttest.IdP, sub string) credentials {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	return credentials{
		valid:   p.Token(t, sub, nil),
		forged:  jwttest.Sign(t, jwttest.Key{KID: "kid-0", Private: other}, p.Claims(sub)),
		expired: p.Token(t, sub, map[string]any{"iat": past.Add(-5 * time.Minute).Unix(), "exp": past.Unix()}),
	}
}

func (c credentials) header(k kind, id string) http.Header {
	h := http.Header{"X-Test-ID": {id}}
	switch k {
	case kindValid:
		h.Set("Authorization", "Bearer "+c.valid)
	case kindForged:
		h.Set("Authorization", "Bearer "+c.forged)
	case kindExpired:
		h.Set("Authorization", "Bearer "+c.expired)
	}
	return h
}

// result is one load request.
type result struct {
	id         string
	kind       kind
	start, end time.Time
	status     int
	code       string
	err        error
}

// load sends requests with every kind of credential, in turn, from several
// goroutines until stopped.
type load struct {
	mu      sync.Mutex
	results []result
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(url string, creds credentials, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				k := kinds[(i+w)%len(kinds)]
				id := fmt.Sprintf("%s-%d-%d", k, w, i)
				r := result{id: id, kind: k, start: time.Now()}
				res, err := do(http.MethodGet, url, creds.header(k, id))
				r.end, r.err, r.status = time.Now(), err, res.status
				if err == nil {
					r.code = res.code()
				}
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// Stop stops the load and returns every request, by start time.
func (l *load) Stop() []result {
	close(l.stop)
	l.wg.Wait()
	return l.snapshot()
}

func (l *load) snapshot() []result {
	l.mu.Lock()
	out := append([]result(nil), l.results...)
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// tally counts results by kind and status ("error" for transport errors).
func tally(rs []result) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		s := fmt.Sprint(r.status)
		if r.err != nil {
			s = "error"
		}
		out[string(r.kind)+" "+s]++
	}
	return out
}

func tallyString(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, m[k])
	}
	return b.String()
}

// checkFailClosed asserts what must hold for every request, whatever the
// gateway's state: a request without a valid credential never reaches the
// upstream and is never answered 2xx; a valid one that was let through
// reached the upstream with the identity and a valid edge assertion.
func checkFailClosed(t *testing.T, rs []result, up *upstream, verify *edgeid.Verifier, path, sub string) {
	t.Helper()
	bad := 0
	for _, r := range rs {
		h, reached := up.seen(r.id)
		if r.kind != kindValid {
			if reached || (r.err == nil && r.status < 300) {
				bad++
				if bad <= 10 {
					t.Errorf("FAIL OPEN: %s request %s: %d %s, reached the upstream: %v", r.kind, r.id, r.status, r.code, reached)
				}
			}
			continue
		}
		if r.err == nil && r.status == http.StatusOK {
			if !reached {
				t.Errorf("valid request %s: 200 but the upstream never saw it", r.id)
				continue
			}
			if got := h.Get("X-User-ID"); got != sub {
				t.Errorf("valid request %s: upstream X-User-ID %q, want %q", r.id, got, sub)
			}
			if id, err := verify.Verify(h.Get("X-Edge-Identity"), http.MethodGet, path); err != nil || id.Subject != sub {
				t.Errorf("valid request %s: X-Edge-Identity does not verify: %v", r.id, err)
			}
		} else if reached {
			t.Errorf("valid request %s: answered %d %s but reached the upstream", r.id, r.status, r.code)
		}
	}
	if bad > 10 {
		t.Errorf("… %d requests without a valid credential failed open in all", bad)
	}
}

// edgeVerifier verifies the X-Edge-Identity assertions for upstream name.
func edgeVerifier(t testing.TB, jwks, upstreamName string) *edgeid.Verifier {
	t.Helper()
	v, err := edgeid.LoadVerifier(jwks, upstreamName)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

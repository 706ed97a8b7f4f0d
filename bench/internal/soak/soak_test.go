package soak

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/bench/internal/rig"
	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
)

func TestTheMixIsTenPercentInvalidTokensTenPercentRandomKeys(t *testing.T) {
	for _, n := range []int{20, 60, 1000, 12000} {
		count := map[Kind]int{}
		for i := 0; i < n; i++ {
			count[KindOf(i)]++
		}
		invalid := count[BadSignature] + count[UnknownKID] + count[Garbage]
		if invalid*10 != n || count[RandomKey]*10 != n || count[ValidJWT]*10 != 4*n || count[ValidKey]*10 != 4*n {
			t.Fatalf("n=%d: %v", n, count)
		}
		if n%60 == 0 && (count[BadSignature] != count[UnknownKID] || count[UnknownKID] != count[Garbage]) {
			t.Fatalf("n=%d: invalid kinds uneven: %v", n, count)
		}
	}
}

func TestHostileRequestsComeFromOneAddressValidOnesFromAPool(t *testing.T) {
	valid := map[string]bool{}
	for i := 0; i < 1000; i++ {
		ip := ClientIP(i)
		if KindOf(i).Valid() {
			if ip == AttackerIP || !strings.HasPrefix(ip, "198.51.100.") {
				t.Fatalf("valid request %d from %s", i, ip)
			}
			valid[ip] = true
		} else if ip != AttackerIP {
			t.Fatalf("hostile request %d from %s", i, ip)
		}
	}
	if len(valid) != ValidIPPool {
		t.Fatalf("%d valid addresses, want %d", len(valid), ValidIPPool)
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"Name:\tdevgateway\nVmPeak:\t  99 kB\nVmRSS:\t   22528 kB\nThreads: 7\n", 22528 << 10, false},
		{"VmRSS:\t0 kB\n", 0, false},
		{"Name:\tx\n", 0, true},
		{"VmRSS:\t12 MB\n", 0, true},
		{"VmRSS:\t-5 kB\n", 0, true},
		{"VmRSS:\t99999999999999999999 kB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseVmRSS([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%q: %d, %v", tt.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrNoRSS) {
			t.Errorf("%q: %v is not ErrNoRSS", tt.in, err)
		}
	}
}

func TestSummarizeComparesFirstAndLastQuarter(t *testing.T) {
	mk := func(v ...int64) []Sample {
		s := make([]Sample, len(v))
		for i := range v {
			s[i] = Sample{At: time.Duration(i) * time.Second, RSS: v[i] << 20}
		}
		return s
	}
	flat, err := Summarize(mk(20, 22, 21, 21, 22, 21, 21, 22))
	if err != nil || !flat.Flat || flat.Min != 20<<20 || flat.Max != 22<<20 {
		t.Fatalf("flat: %+v %v", flat, err)
	}
	growing, _ := Summarize(mk(20, 20, 24, 26, 28, 30, 32, 34))
	if growing.Flat || growing.GrowthPercent < 60 {
		t.Fatalf("growing: %+v", growing)
	}
	var byMinute []Sample
	for i := range 5 {
		byMinute = append(byMinute, Sample{At: time.Duration(i) * 30 * time.Second, RSS: int64(10+i) << 20})
	}
	if got := PerMinute(byMinute); len(got) != 3 || got[0] != 21<<19 || got[1] != 25<<19 || got[2] != 14<<20 {
		t.Fatalf("per minute: %v", got)
	}
	if _, err := Summarize(mk(1, 2, 3)); err == nil {
		t.Fatal("3 samples summarized")
	}
}

func TestBoundsFollowTheDefaults(t *testing.T) {
	b := BoundsFor(10*time.Minute+15*time.Second, 4)
	// JWKS: ceil(615/10)=62 + ceil(615/300)=3 + 1; validate: 20 + ceil(615*20/60)=205 + 4*(ceil(615/60)=11 + 1).
	if b.JWKSFetches != 66 || b.ValidateCalls != 20+205+48 {
		t.Fatalf("%+v", b)
	}
}

func TestErrorCode(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"error":{"code":"x"}}`, ""},
		{401, `{"error":{"code":"unknown_kid","message":"…"}}`, "unknown_kid"},
		{429, `not json`, "(no code)"},
		{401, `{"error":{"code":"` + strings.Repeat("a", 65) + `"}}`, "(long code)"},
	} {
		if got := errorCode(tt.status, []byte(tt.body)); got != tt.want {
			t.Errorf("%d %s: %q", tt.status, tt.body, got)
		}
	}
}

// Each kind's credential is refused (or accepted) by the edge's own
// verifier and key parser for the reason the soak means it to be.
func TestCredentialsOfEachKind(t *testing.T) {
	key, _ := apikey.Generate(apikey.EnvLive)
	r, err := rig.New([]byte("tok"), []apikey.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	r.Issuer = srv.URL + "/realms/bench"
	jwt, err := r.Mint("u", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCredentials(r.Issuer, r.KID, jwt, []string{key.Secret()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtauth.New(jwtauth.Config{Issuers: []jwtauth.Issuer{{Issuer: r.Issuer, JWKSURL: srv.URL + rig.JWKSPath}},
		Audiences: []string{"jan-api"}, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[Kind]bool{}
	for i := 0; i < 60; i++ {
		k := KindOf(i)
		auth, err := c.Authorization(i)
		if err != nil {
			t.Fatal(err)
		}
		cred := strings.TrimPrefix(auth, "Bearer ")
		seen[k] = true
		switch k {
		case ValidKey:
			if cred != key.Secret() {
				t.Fatalf("%d: valid key expected", i)
			}
		case RandomKey:
			if _, err := apikey.Parse(cred); err != nil || cred == key.Secret() {
				t.Fatalf("%d: a random well-formed key expected: %v", i, err)
			}
		default:
			_, err := v.Verify(ctx, cred)
			want := map[Kind]error{ValidJWT: nil, BadSignature: jwtauth.ReasonSignature, UnknownKID: jwtauth.ReasonUnknownKID}[k]
			if k == Garbage {
				if err == nil || jwtauth.ReasonOf(err).Status() != 401 {
					t.Fatalf("%d garbage: %v", i, err)
				}
			} else if !errors.Is(err, want) && !(want == nil && err == nil) {
				t.Fatalf("%d %v: %v, want %v", i, k, err, want)
			}
		}
	}
	if len(seen) != int(numKinds) {
		t.Fatalf("kinds seen: %v", seen)
	}
	if _, err := NewCredentials(r.Issuer, r.KID, jwt, []string{"sk_nope"}); err == nil {
		t.Fatal("a malformed rig key accepted")
	}
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add([]byte("VmRSS:\t   22528 kB\n"))
	f.Add([]byte("VmRSS:\t9223372036854775807 kB\n"))
	f.Add([]byte("VmRSS:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVmRSS(b)
		if err == nil && v < 0 {
			t.Fatalf("negative RSS %d", v)
		}
	})
}

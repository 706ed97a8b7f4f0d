package signedurl

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var key = []byte("url-signing-key-0123456789abcdef0123456789")

const id = "jan_abcdefghijklmnopqrstuvwxyz"

func signer(t testing.TB, now *time.Time) *Signer {
	t.Helper()
	s, err := New(key, 5*time.Minute, time.Hour, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignedURLIsValidUntilItExpires(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := signer(t, &now)
	exp, sig, expires := s.Sign(id)
	if !expires.Equal(now.Add(5*time.Minute)) || exp != expires.Unix() {
		t.Fatalf("expires %v exp %d", expires, exp)
	}
	e := strconv.FormatInt(exp, 10)
	if err := s.Verify(id, e, sig); err != nil {
		t.Fatalf("fresh url: %v", err)
	}
	now = now.Add(5*time.Minute - time.Second)
	if err := s.Verify(id, e, sig); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	now = now.Add(time.Second)
	if err := s.Verify(id, e, sig); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
}

func TestTamperedURLsAreInvalid(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := signer(t, &now)
	exp, sig, _ := s.Sign(id)
	e := strconv.FormatInt(exp, 10)
	flip := []byte(sig)
	flip[10] ^= 1
	other, _ := New([]byte("another-key-0123456789abcdef0123456789ab"), 5*time.Minute, time.Hour, func() time.Time { return now })
	_, otherSig, _ := other.Sign(id)
	cases := map[string][3]string{
		"sig tampered":       {id, e, string(flip)},
		"other id":           {"jan_bbcdefghijklmnopqrstuvwxyz", e, sig},
		"exp changed":        {id, strconv.FormatInt(exp+60, 10), sig},
		"exp leading zero":   {id, "0" + e, sig},
		"exp plus sign":      {id, "+" + e, sig},
		"exp not a number":   {id, "soon", sig},
		"exp empty":          {id, "", sig},
		"sig empty":          {id, e, ""},
		"sig padded":         {id, e, sig + "="},
		"sig std alphabet":   {id, e, strings.NewReplacer("-", "+", "_", "/").Replace(sig) + "A"},
		"sig from other key": {id, e, otherSig},
		"sig truncated":      {id, e, sig[:42]},
	}
	for name, c := range cases {
		if err := s.Verify(c[0], c[1], c[2]); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestExpiryBeyondTheLongestLifetimeIsInvalid(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	long, _ := New(key, 10*time.Hour, 10*time.Hour, func() time.Time { return now })
	exp, sig, _ := long.Sign(id)
	s := signer(t, &now) // same key, max 1 h
	if err := s.Verify(id, strconv.FormatInt(exp, 10), sig); !errors.Is(err, ErrInvalid) {
		t.Fatalf("10 h url under a 1 h maximum: %v", err)
	}
}

func TestNewRefusesShortKeysAndBadLifetimes(t *testing.T) {
	if _, err := New(key[:31], time.Minute, time.Hour, nil); err == nil {
		t.Fatal("31-byte key accepted")
	}
	if _, err := New(key, 2*time.Hour, time.Hour, nil); err == nil {
		t.Fatal("ttl above max accepted")
	}
	s, _ := New(key, time.Minute, time.Hour, nil)
	if strings.Contains(s.String(), string(key)) {
		t.Fatal("String prints the key")
	}
}

// FuzzVerify: arbitrary query values never panic and never verify.
func FuzzVerify(f *testing.F) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s, _ := New(key, 5*time.Minute, time.Hour, func() time.Time { return now })
	exp, sig, _ := s.Sign(id)
	f.Add(id, strconv.FormatInt(exp, 10), sig)
	f.Add(id, "99999999999", sig)
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, fid, fexp, fsig string) {
		err := s.Verify(fid, fexp, fsig)
		if err == nil && (fid != id || fexp != strconv.FormatInt(exp, 10) || fsig != sig) {
			t.Fatalf("forged url verified: %q %q %q", fid, fexp, fsig)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	s, _ := New(key, 5*time.Minute, time.Hour, func() time.Time { return now })
	exp, sig, _ := s.Sign(id)
	e := strconv.FormatInt(exp, 10)
	for b.Loop() {
		_ = s.Verify(id, e, sig)
	}
}

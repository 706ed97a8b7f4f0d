package mediaid

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

var pattern = regexp.MustCompile(`^jan_[a-z2-7]{26}$`)

func TestNewIDsAreWellFormedAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if !pattern.MatchString(id) || !Valid(id) {
			t.Fatalf("id %q is malformed", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestFromUsesTheGivenRandomness(t *testing.T) {
	a, _ := From(bytes.NewReader(bytes.Repeat([]byte{0}, 17)))
	if a != "jan_"+strings.Repeat("a", 26) {
		t.Fatalf("zero bytes gave %q", a)
	}
	b, _ := From(bytes.NewReader(bytes.Repeat([]byte{0xff}, 17)))
	if b != "jan_"+strings.Repeat("7", 26) {
		t.Fatalf("0xff bytes gave %q", b)
	}
	if _, err := From(bytes.NewReader(make([]byte, 3))); err == nil {
		t.Fatal("short randomness accepted")
	}
}

func TestValidRefusesEverythingElse(t *testing.T) {
	good := "jan_abcdefghijklmnopqrstuvwxyz"
	if !Valid(good) {
		t.Fatal("good id refused")
	}
	for _, s := range []string{"", "jan_", good + "a", good[:len(good)-1], "JAN_abcdefghijklmnopqrstuvwxyz",
		"jan_ABCDEFGHIJKLMNOPQRSTUVWXYZ", "jan_abcdefghijklmnopqrstuvwxy1", "jan_abcdefghijklmnopqrstuvwxy8",
		"jan_../../../../etc/passwd/xx", "jan_abcdefghijklmnopqrstuvwx/", "jan_abcdefghijklmnopqrstuvwx.",
		"jan_abcdefghijklmnopqrstuvwx\x00", "med_abcdefghijklmnopqrstuvwxyz", "jan_abcdefghijklmnopqrstuvwxy=",
		"jan_abcdefghijklmnopqrstuvwxyé"} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}

// FuzzValid: Valid agrees with the documented pattern, so no id with a path
// separator, dot or NUL ever reaches the file system.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"jan_abcdefghijklmnopqrstuvwxyz", "jan_", "jan_../x", "", "jan_aaaaaaaaaaaaaaaaaaaaaaaaa\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) != pattern.MatchString(s) {
			t.Fatalf("Valid(%q) = %v, pattern says %v", s, Valid(s), !Valid(s))
		}
		if Valid(s) && strings.ContainsAny(s, "/\\.\x00") {
			t.Fatalf("Valid(%q) with a path character", s)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		_, _ = New()
	}
}

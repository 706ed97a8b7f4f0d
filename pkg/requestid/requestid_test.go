package requestid

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"abc-123_x.y": true, strings.Repeat("a", 128): true, strings.Repeat("a", 129): false,
		"": false, "a b": false, "a\r\nX-User-ID: x": false, "ü": false, "a/b": false,
	} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) != %v", s, want)
		}
	}
	if id := New(); !Valid(id) || len(id) != 32 || New() == id {
		t.Fatal("New")
	}
	if Or("ok") != "ok" || Or("not ok") == "not ok" {
		t.Fatal("Or")
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range []string{"abc", "\r\n", strings.Repeat("z", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) && (len(s) > MaxLen || strings.ContainsAny(s, " \r\n\t:/")) {
			t.Fatalf("accepted %q", s)
		}
	})
}

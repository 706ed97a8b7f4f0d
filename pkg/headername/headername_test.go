package headername

import "testing"

func TestFolding(t *testing.T) {
	if Lower("X-User-ID") != "x-user-id" || Lower("x") != "x" {
		t.Fatal("Lower")
	}
	if !EqualFold("X-User-ID", "x-user-id") || EqualFold("\u212a", "k") || EqualFold("a", "ab") {
		t.Fatal("EqualFold must be ASCII-only")
	}
	if Canonical("X_User_ID") != "x-user-id" {
		t.Fatal("Canonical")
	}
	if !HasCanonicalPrefix("X_USER_ID", "x-user-") || HasCanonicalPrefix("X-Us", "x-user-") {
		t.Fatal("HasCanonicalPrefix")
	}
	if !EqualCanonical("x_auth_method", "x-auth-method") || EqualCanonical("x-auth-methods", "x-auth-method") {
		t.Fatal("EqualCanonical")
	}
	for s, want := range map[string]bool{"X-Request-ID": true, "": false, "a b": false, "a:b": false, "é": false, "!#$%&'*+-.^_`|~": true} {
		if IsToken(s) != want {
			t.Errorf("IsToken(%q) != %v", s, want)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"X-User-ID", "x_user_id", "\u212a", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Canonical(s)
		if !EqualCanonical(s, c) || Canonical(c) != c {
			t.Fatalf("canonical form of %q is unstable: %q", s, c)
		}
		if EqualFold(s, Lower(s)) != true {
			t.Fatal("Lower must fold-equal its input")
		}
	})
}

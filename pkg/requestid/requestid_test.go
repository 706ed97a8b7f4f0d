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

// credentialShaped are request ids that match the charset but carry the
// shape of an API key or a JWT: the attack run's audit-suppression ids and
// their spellings.
var credentialShaped = []string{
	"sk_rt1234", "SK_rt1234", "sK_live_Ab3dE5g7_secretsecret", "eyJrt.ab12.x", "eyJ..", "a.eyJ.b",
	"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "x.y.eyJz",
}

func TestCredentialShapedRequestIDsAreNotValid(t *testing.T) {
	for _, s := range credentialShaped {
		if !LooksLikeCredential(s) {
			t.Errorf("LooksLikeCredential(%q) = false", s)
		}
		if Valid(s) {
			t.Errorf("Valid(%q) = true: a credential-shaped id would reach logs and audit events", s)
		}
		if got := Or(s); got == s || !Valid(got) {
			t.Errorf("Or(%q) = %q, want a generated id", s, got)
		}
	}
	// near misses stay valid: sk_ only at the start, a JWT needs eyJ and two dots
	for _, s := range []string{"ask_1", "task_sk_1", "sk-1", "skx_1", "eyJ.a", "eyj.a.b", "a.b.c", "req-eyJ"} {
		if LooksLikeCredential(s) || !Valid(s) {
			t.Errorf("%q refused", s)
		}
	}
	// the audit layer's other fields: sk_ after '/' or ':' too
	for _, s := range []string{"apikey:sk_live_x", "keys/sk_x"} {
		if !LooksLikeCredential(s) {
			t.Errorf("LooksLikeCredential(%q) = false", s)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range append([]string{"abc", "\r\n", strings.Repeat("z", 200)}, credentialShaped...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) && (len(s) > MaxLen || strings.ContainsAny(s, " \r\n\t:/")) {
			t.Fatalf("accepted %q", s)
		}
		if Valid(s) && LooksLikeCredential(s) {
			t.Fatalf("accepted the credential-shaped %q", s)
		}
		if id := Or(s); !Valid(id) || (Valid(s) && id != s) {
			t.Fatalf("Or(%q) = %q", s, id)
		}
	})
}

package bearer

import "testing"

func TestToken(t *testing.T) {
	tests := []struct {
		in, tok string
		ok      bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER\tabc ", "abc", true},
		{"Bearer  abc", "abc", true},
		{"Bearer", "", true},
		{"Bearer ", "", true},
		{"Bearerabc", "", false},
		{"Basic abc", "", false},
		{"", "", false},
		{"Bear", "", false},
	}
	for _, tc := range tests {
		tok, ok := Token(tc.in)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("Token(%q) = %q, %v; want %q, %v", tc.in, tok, ok, tc.tok, tc.ok)
		}
	}
	if !IsAPIKey("sk_live_x") || IsAPIKey("eyJ") {
		t.Error("IsAPIKey")
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"Bearer x", "bearer\t\tsk_live_1", "Bearer\r\nX: y", "\x00", "Bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := Token(s)
		if !ok && tok != "" {
			t.Fatal("token without ok")
		}
		if len(tok) > len(s) {
			t.Fatal("token longer than input")
		}
	})
}

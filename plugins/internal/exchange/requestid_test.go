package exchange

import "testing"

func TestRequestIDIsHeaderGuardsElseAnAcceptableClientID(t *testing.T) {
	for _, c := range []struct {
		client, kept, want string
	}{
		{"req-1", "", "req-1"},
		{"eyJrt.ab12.x", "", ""}, // credential-shaped: never the event's
		{"sk_rt1234", "", ""},
		{"a b", "", ""},
		{"eyJrt.ab12.x", "0123abcd", "0123abcd"},
		{"req-1", "0123abcd", "0123abcd"},
	} {
		f := NewFake("GET", "/", map[string][]string{"X-Request-ID": {c.client}})
		if c.kept != "" {
			f.SetRequestID(c.kept)
		}
		if got := RequestID(f); got != c.want {
			t.Errorf("client %q kept %q: RequestID = %q, want %q", c.client, c.kept, got, c.want)
		}
	}
}

func TestBufferKeepsTheRequestIDAcrossResetAndExit(t *testing.T) {
	var b Buffer
	b.SetRequestID("0123abcd")
	b.SetResponseHeader("X-Request-ID", "0123abcd")
	b.MarkExited()
	b.Reset()
	if b.RequestID() != "0123abcd" {
		t.Fatalf("RequestID after exit and reset = %q", b.RequestID())
	}
}

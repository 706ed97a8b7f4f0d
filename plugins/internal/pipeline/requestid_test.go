package pipeline

import (
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

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
		r := &Request{Exchange: exchange.NewFake("GET", "/", map[string][]string{"X-Request-ID": {c.client}}), p: New("p", Options{})}
		if c.kept != "" {
			r.SetRequestID(c.kept)
		}
		if got := r.RequestID(); got != c.want {
			t.Errorf("client %q kept %q: RequestID = %q, want %q", c.client, c.kept, got, c.want)
		}
	}
}

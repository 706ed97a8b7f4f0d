package server_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
)

// TestExpiresInSecondsIsBoundedAndEndsTheKeyToTheSecond: a key created with
// expires_in_seconds (edgectl run's throwaway keys) expires exactly that many
// seconds after its creation; the validate answer carries that expiry; the
// key is refused (key_expired) from that instant on; bounds are 1 s .. the
// longest lifetime in days; a request cannot give both units.
func TestExpiresInSecondsIsBoundedAndEndsTheKeyToTheSecond(t *testing.T) {
	h := newHarness(t, options{maxPerUser: 100})
	tok := h.token("alice", "user")
	maxSecs := 365 * 86400 // the harness runs with the default API_KEY_MAX_EXPIRES_DAYS (365)

	for _, tc := range []struct {
		name, body string
		code       string
	}{
		{"zero", `{"name":"x","expires_in_seconds":0}`, "invalid_expires_in_seconds"},
		{"negative", `{"name":"x","expires_in_seconds":-1}`, "invalid_expires_in_seconds"},
		{"one over the longest lifetime", `{"name":"x","expires_in_seconds":` + strconv.Itoa(maxSecs+1) + `}`, "invalid_expires_in_seconds"},
		{"int64 minimum", `{"name":"x","expires_in_seconds":-9223372036854775808}`, "invalid_expires_in_seconds"},
		{"int64 maximum (would overflow a duration)", `{"name":"x","expires_in_seconds":9223372036854775807}`, "invalid_expires_in_seconds"},
		{"beyond int64", `{"name":"x","expires_in_seconds":9223372036854775808}`, "invalid_field_type"},
		{"fraction", `{"name":"x","expires_in_seconds":1.5}`, "invalid_field_type"},
		{"exponent", `{"name":"x","expires_in_seconds":1e3}`, "invalid_field_type"},
		{"string", `{"name":"x","expires_in_seconds":"60"}`, "invalid_field_type"},
		{"both units", `{"name":"x","expires_in_days":1,"expires_in_seconds":60}`, "invalid_expiry"},
		{"both units, case folded", `{"name":"x","Expires_In_Days":1,"EXPIRES_IN_SECONDS":60}`, "invalid_expiry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.api(http.MethodPost, "/auth/api-keys", tok, tc.body)
			if r.status != 400 || r.code() != tc.code {
				t.Fatalf("got %d %s, want 400 %s", r.status, truncate(r.body), tc.code)
			}
		})
	}

	for _, secs := range []int{1, 59, 3600, maxSecs} {
		c := h.create(tok, `{"name":"s`+strconv.Itoa(secs)+`","expires_in_seconds":`+strconv.Itoa(secs)+`}`)
		if want := h.clock().Add(time.Duration(secs) * time.Second); c.ExpiresAt == nil || !c.ExpiresAt.Equal(want) {
			t.Fatalf("%d s: expires_at %v, want %v", secs, c.ExpiresAt, want)
		}
	}

	// A one-hour key: valid, with its expiry in the validate answer, up to
	// the last instant; refused from its expiry on.
	c := h.create(tok, `{"name":"run","expires_in_seconds":3600}`)
	exp := h.clock().Add(time.Hour)
	var v server.ValidateResponse
	if r := h.validate(c.Key); r.status != 200 {
		t.Fatalf("new key: %d %s", r.status, r.body)
	} else if r.json(t, &v); v.ExpiresAt == nil || !v.ExpiresAt.Equal(exp) {
		t.Fatalf("validate expires_at %v, want %v", v.ExpiresAt, exp)
	}
	h.advance(time.Hour - time.Microsecond)
	if r := h.validate(c.Key); r.status != 200 {
		t.Fatalf("1 µs before its expiry: %d %s", r.status, r.body)
	}
	h.advance(time.Microsecond)
	if r := h.validate(c.Key); r.status != 401 || r.code() != "key_expired" {
		t.Fatalf("at its expiry: %d %s", r.status, r.body)
	}

	// A rotation keeps the lifetime in seconds.
	c = h.create(tok, `{"name":"rot","expires_in_seconds":90}`)
	h.advance(30 * time.Second)
	r := h.api(http.MethodPost, "/auth/api-keys/"+c.ID+"/rotate", tok, "")
	var rot created
	if r.status != 201 {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	if r.json(t, &rot); rot.ExpiresAt == nil || !rot.ExpiresAt.Equal(h.clock().Add(90*time.Second)) {
		t.Fatalf("rotated key expires_at %v, want 90 s from the rotation", rot.ExpiresAt)
	}
}

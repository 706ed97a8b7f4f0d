package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// storedEvent is one audit_events row, every column a client can influence.
type storedEvent struct {
	requestID, subject, keyID, clientIP, action, target, outcome, reason, severity, source, sanitized string
}

func (r storedEvent) columns() []string {
	return []string{r.requestID, r.subject, r.keyID, r.clientIP, r.action, r.target, r.outcome, r.reason, r.severity,
		r.source, r.sanitized}
}

// eventsWithRequestID waits until llm-api has stored an event with this
// request id, then waits a little longer (a duplicate would have arrived
// with it) and returns every such row.
func (e *edgeStack) eventsWithRequestID(t *testing.T, rid string) []storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	query := func() []storedEvent {
		rows, err := conn.Query(ctx, `SELECT request_id, subject, key_id, client_ip, action, target, outcome, reason,
			severity, source, sanitized FROM audit_events WHERE request_id = $1 ORDER BY seq`, rid)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []storedEvent
		for rows.Next() {
			var r storedEvent
			if err := rows.Scan(&r.requestID, &r.subject, &r.keyID, &r.clientIP, &r.action, &r.target, &r.outcome,
				&r.reason, &r.severity, &r.source, &r.sanitized); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for {
		if out := query(); len(out) > 0 {
			time.Sleep(time.Second)
			return query()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no audit event with request id %s in PostgreSQL within 25 s", rid)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// eventsHolding counts stored events with value in any column.
func (e *edgeStack) eventsHolding(t *testing.T, value string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE strpos(concat_ws(' ', stream_id, request_id, subject,
		key_id, client_ip, action, target, outcome, reason, severity, source, sanitized), $1) > 0`, value).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAuditKeepsEventsOfCredentialShapedRequestIDs is the attack run's
// audit suppression through the real Kong: a request id that matches the
// request-id charset but is shaped like a JWT or an API key made the audit
// validator drop the whole event of the request — a gateway denial's
// auth.denied and a key creation's apikey.created (201 and a key, no
// record). Each now produces exactly one event in PostgreSQL, under the
// replaced request id the gateway echoed, and the credential-shaped value
// is nowhere in the record.
func TestAuditKeepsEventsOfCredentialShapedRequestIDs(t *testing.T) {
	s, e := requireEdge(t)
	userID, jwt := e.userToken(t, s)

	check := func(name, sent string, a answer) string {
		t.Helper()
		rid := a.header.Values("X-Request-ID")
		if len(rid) == 0 || rid[0] == sent || !requestid.Valid(rid[0]) || len(rid[0]) != 32 {
			t.Fatalf("%s: X-Request-ID echoed as %q, want header-guard's generated id", name, rid)
		}
		for _, v := range rid {
			if v != rid[0] {
				t.Fatalf("%s: two request ids on the answer: %q", name, rid)
			}
		}
		return rid[0]
	}

	// a gateway denial: a forged signature on an LLM route
	const jwtShaped = "eyJrt.ab12.x"
	forged := jwt[:strings.LastIndexByte(jwt, '.')] + ".c2lnbmF0dXJlLWJ5LWFuLWF0dGFja2VyLTAxMjM0NTY3ODk"
	client := clientAddr()
	a := e.do(t, http.MethodGet, "/v1/models/audit-rid", forged, nil,
		http.Header{"X-Request-ID": {jwtShaped}, "X-Forwarded-For": {client}})
	if a.status != http.StatusUnauthorized {
		t.Fatalf("a forged signature: %d %s", a.status, a.body)
	}
	rid := check("denial", jwtShaped, a)
	rows := e.eventsWithRequestID(t, rid)
	if len(rows) != 1 {
		t.Fatalf("the denial's events: %+v, want exactly one", rows)
	}
	if r := rows[0]; r.action != "auth.denied" || r.outcome != "denied" || r.reason != "signature_invalid" ||
		r.source != "edgeguard" || r.clientIP != client || r.target != "/v1/models/audit-rid" {
		t.Errorf("the denial's event: %+v", r)
	}

	// a key creation with an API-key-shaped request id
	const keyShaped = "sk_rt1234"
	a = e.do(t, http.MethodPost, "/auth/api-keys", jwt, map[string]any{"name": "audit-rid-" + randHex(4)},
		http.Header{"X-Request-ID": {keyShaped}})
	if a.status != http.StatusCreated {
		t.Fatalf("create a key: %d %s", a.status, a.body)
	}
	var k struct {
		Key string `json:"key"`
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(a.body, &k); err != nil || k.Key == "" {
		t.Fatalf("the created key: %v", err)
	}
	used.add(k.Key)
	rid = check("key creation", keyShaped, a)
	created := e.eventsWithRequestID(t, rid)
	if len(created) != 1 {
		t.Fatalf("the key creation's events: %+v, want exactly one", created)
	}
	if r := created[0]; r.action != "apikey.created" || r.outcome != "success" || r.subject != userID ||
		r.source != "llm-api" || (k.KID != "" && r.target != k.KID) {
		t.Errorf("the key creation's event: %+v", r)
	}

	for _, r := range append(rows, created...) {
		for _, c := range r.columns() {
			if strings.Contains(c, jwtShaped) || strings.Contains(c, keyShaped) || strings.Contains(c, k.Key) ||
				strings.Contains(c, "eyJ") || strings.Contains(c, forged) {
				t.Errorf("a stored event holds a credential-shaped value: %+v", r)
			}
		}
	}
	for _, v := range []string{jwtShaped, keyShaped} {
		if n := e.eventsHolding(t, v); n != 0 {
			t.Errorf("%d stored events hold %q", n, v)
		}
	}
}

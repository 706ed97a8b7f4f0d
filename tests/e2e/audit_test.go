package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type auditRow struct {
	action, outcome, reason, source, subject, target, clientIP string
}

// auditRows polls llm-api's audit_events table until rows with requestID
// appear (the edge emits to the Redis Stream, llm-api consumes it).
func (e *edgeStack) auditRows(t *testing.T, requestID string) []auditRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		rows, err := conn.Query(ctx, `SELECT action, outcome, reason, source, subject, target, client_ip
			FROM audit_events WHERE request_id = $1 ORDER BY seq`, requestID)
		if err != nil {
			t.Fatal(err)
		}
		var out []auditRow
		for rows.Next() {
			var r auditRow
			if err := rows.Scan(&r.action, &r.outcome, &r.reason, &r.source, &r.subject, &r.target, &r.clientIP); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		rows.Close()
		if len(out) > 0 {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no audit event with request id %s in PostgreSQL within 20 s", requestID)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestAuditEventsReachPostgreSQL: an edge denial (kong.yml turns audit on for
// every auth plugin) and a key creation in llm-api become events on the
// Redis Stream that llm-api stores in PostgreSQL — without the credential.
func TestAuditEventsReachPostgreSQL(t *testing.T) {
	s, e := requireEdge(t)
	userID, jwt := e.userToken(t, s)

	denied := "audit-denied-" + randHex(6)
	bad := jwt[:strings.LastIndexByte(jwt, '.')] + ".c2lnbmF0dXJlLWJ5LWFuLWF0dGFja2VyLTAxMjM0NTY3ODk"
	client := clientAddr()
	if a := e.do(t, http.MethodGet, "/v1/models", bad, nil, http.Header{"X-Request-ID": {denied}, "X-Forwarded-For": {client}}); a.status != http.StatusUnauthorized {
		t.Fatalf("a forged signature: %d", a.status)
	}
	rows := e.auditRows(t, denied)
	if r := rows[0]; len(rows) != 1 || r.action != "auth.denied" || r.outcome != "denied" || r.reason != "signature_invalid" ||
		r.source != "edgeguard" || r.clientIP != client || r.target != "/v1/models" {
		t.Errorf("the denial's event: %+v", rows)
	}

	created := "audit-created-" + randHex(6)
	a := e.do(t, http.MethodPost, "/auth/api-keys", jwt, map[string]any{"name": "audit-" + randHex(4)}, http.Header{"X-Request-ID": {created}})
	if a.status != http.StatusCreated {
		t.Fatalf("create a key: %d %s", a.status, a.body)
	}
	rows = e.auditRows(t, created)
	if r := rows[0]; len(rows) != 1 || r.action != "apikey.created" || r.outcome != "success" || r.subject != userID || r.source != "llm-api" {
		t.Errorf("the key creation's event: %+v", rows)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(a.body, &k); err != nil || k.Key == "" {
		t.Fatalf("the created key: %v", err)
	}
	used.add(k.Key)
	for _, r := range rows {
		if strings.Contains(fmt.Sprintf("%+v", r), k.Key) || strings.Contains(fmt.Sprintf("%+v", r), jwt) {
			t.Error("an audit event holds a credential")
		}
	}
}

package app_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/rs/zerolog"
)

type eventsPage struct {
	Events []struct {
		ID        string      `json:"id"`
		Action    string      `json:"action"`
		Target    string      `json:"target"`
		Actor     audit.Actor `json:"actor"`
		Outcome   string      `json:"outcome"`
		RequestID string      `json:"request_id"`
	} `json:"events"`
	NextCursor *string `json:"next_cursor"`
}

// startAudited is start with a private audit stream, so parallel packages
// sharing the test Redis do not read each other's events.
func startAudited(t *testing.T, logs *testenv.Buffer) *env {
	t.Helper()
	return startAuditedOn(t, logs, redisAddr(t), false)
}

// startAuditedOn is startAudited with REDIS_ADDR = redisAddr and
// REDIS_CLUSTER = cluster.
func startAuditedOn(t *testing.T, logs *testenv.Buffer, redisAddr string, cluster bool) *env {
	t.Helper()
	e := &env{idp: jwttest.New(t), roles: keystest.NewRoles()}
	e.roles.Set(keys.Owner{Subject: "alice", Username: "alice", Enabled: true, RealmRoles: []string{"user"}})
	e.cfg = testConfig(t, e.idp, pgtest.Schema(t), redisAddr)
	e.cfg.RedisCluster = cluster
	var b [6]byte
	_, _ = rand.Read(b[:])
	e.cfg.Audit.Stream = "test:audit:" + hex.EncodeToString(b[:])
	e.cfg.AuditRetentionDays = 30
	a, err := app.New(context.Background(), e.cfg, zerolog.New(logs).Level(zerolog.DebugLevel),
		app.Deps{Roles: e.roles, SweepInterval: 50 * time.Millisecond, UsageInterval: time.Hour, AuditConsumer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	e.app = a
	ctx, cancel := context.WithCancel(context.Background())
	wg := a.Background(ctx)
	t.Cleanup(func() { cancel(); wg.Wait() })
	e.public = httptest.NewServer(a.Public)
	e.internal = httptest.NewServer(a.Internal)
	t.Cleanup(e.public.Close)
	t.Cleanup(e.internal.Close)
	return e
}

func (e *env) admin(t testing.TB) map[string]string {
	return map[string]string{"Authorization": "Bearer " + e.idp.Token(t, "root-admin", map[string]any{
		"realm_access": map[string]any{"roles": []string{"user", "admin"}}})}
}

func (e *env) events(t *testing.T, query string) eventsPage {
	t.Helper()
	st, b := call(t, http.MethodGet, e.public.URL+"/v1/admin/audit/events?"+query, e.admin(t), "")
	if st != 200 {
		t.Fatalf("events: %d %s", st, b)
	}
	var p eventsPage
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyActionsReachPostgresAndTheAdminEndpoint(t *testing.T) {
	var logs testenv.Buffer
	e := startAudited(t, &logs)
	k := e.create(t, "ci")
	if st, b := call(t, http.MethodDelete, e.public.URL+"/auth/api-keys/"+k.ID, e.bearer(t), ""); st != 204 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	// a refused creation (roles not held) is audited as denied
	if st, _ := call(t, http.MethodPost, e.public.URL+"/auth/api-keys", e.bearer(t), `{"name":"x","roles":["admin"]}`); st != 403 {
		t.Fatalf("escalation: %d", st)
	}

	var p eventsPage
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p = e.events(t, "actor=alice")
		if len(p.Events) >= 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(p.Events) != 3 {
		t.Fatalf("events %+v, want 3", p)
	}
	// newest first
	if p.Events[0].Action != "apikey.created" || p.Events[0].Outcome != "denied" ||
		p.Events[1].Action != "apikey.revoked" || p.Events[1].Target != k.KID ||
		p.Events[2].Action != "apikey.created" || p.Events[2].Target != k.KID {
		t.Fatalf("events %+v", p.Events)
	}
	if p.Events[2].Actor.Subject != "alice" || p.Events[2].Actor.IP != "127.0.0.1" || p.Events[2].RequestID == "" {
		t.Fatalf("actor %+v request id %q", p.Events[2].Actor, p.Events[2].RequestID)
	}

	// filters and pagination
	if got := e.events(t, "action=apikey.revoked"); len(got.Events) != 1 {
		t.Fatalf("action filter: %+v", got)
	}
	page1 := e.events(t, "limit=2")
	if len(page1.Events) != 2 || page1.NextCursor == nil {
		t.Fatalf("page 1 %+v", page1)
	}
	page2 := e.events(t, "limit=2&cursor="+url.QueryEscape(*page1.NextCursor))
	if len(page2.Events) != 1 || page2.NextCursor != nil || page2.Events[0].ID == page1.Events[1].ID {
		t.Fatalf("page 2 %+v", page2)
	}

	st, b := call(t, http.MethodGet, e.public.URL+"/v1/admin/audit/stats", e.admin(t), "")
	if st != 200 || !strings.Contains(string(b), `"apikey.created":2`) || !strings.Contains(string(b), `"total":3`) {
		t.Fatalf("stats: %d %s", st, b)
	}

	// the counters on the internal listener
	st, b = call(t, http.MethodGet, e.internal.URL+"/metrics", nil, "")
	for _, want := range []string{"edgeguard_audit_events_written_total 3", "edgeguard_audit_events_stored_total 3",
		`edgeguard_audit_events_dropped_total{reason="redis_error"} 0`, "edgeguard_audit_events_rejected_total 0"} {
		if st != 200 || !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// the secret sweep: the key's secret, the caller's and the admin's
	// tokens and the pepper appear in no stored event and no log line
	all := e.events(t, "limit=200")
	raw, _ := json.Marshal(all)
	secrets := []string{k.Key, strings.TrimPrefix(e.bearer(t)["Authorization"], "Bearer "),
		strings.TrimPrefix(e.admin(t)["Authorization"], "Bearer "), string(e.cfg.Pepper), internalToken}
	for _, sec := range secrets {
		if strings.Contains(string(raw), sec) || strings.Contains(logs.String(), sec) {
			t.Fatalf("a secret (%d bytes) reached an audit event or the log", len(sec))
		}
	}
	if strings.Contains(string(raw), "eyJ") || strings.Contains(string(raw), "sk_") {
		t.Fatal("a credential-shaped value reached an audit event")
	}
}

func TestAdminAuditEndpointsRefuseNonAdminsAndBadInput(t *testing.T) {
	var logs testenv.Buffer
	e := startAudited(t, &logs)
	for _, path := range []string{"/v1/admin/audit/events", "/v1/admin/audit/stats"} {
		if st, b := call(t, http.MethodGet, e.public.URL+path, e.bearer(t), ""); st != 403 || !strings.Contains(string(b), "insufficient_role") {
			t.Fatalf("%s as a user: %d %s", path, st, b)
		}
		if st, _ := call(t, http.MethodGet, e.public.URL+path, nil, ""); st != 401 {
			t.Fatalf("%s anonymous: %d", path, st)
		}
	}
	k := e.create(t, "k")
	if st, _ := call(t, http.MethodGet, e.public.URL+"/v1/admin/audit/events", map[string]string{"Authorization": "Bearer " + k.Key}, ""); st != 401 && st != 403 {
		t.Fatalf("api key on the admin API: %d", st)
	}
	for q, code := range map[string]string{
		"severity=debug": "invalid_severity", "action=x": "invalid_action", "limit=0": "invalid_limit",
		"limit=abc": "invalid_limit", "cursor=AAAA": "invalid_cursor", "since=yesterday": "invalid_since",
		"actor=a%0Ab": "invalid_actor", "foo=1": "unknown_parameter", "limit=1&limit=2": "duplicate_parameter",
	} {
		st, b := call(t, http.MethodGet, e.public.URL+"/v1/admin/audit/events?"+q, e.admin(t), "")
		if st != 400 || !strings.Contains(string(b), `"code":"`+code+`"`) {
			t.Errorf("%s: %d %s, want 400 %s", q, st, b, code)
		}
	}
}

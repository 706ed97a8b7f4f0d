package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/audit/audittest"
	"github.com/redis/go-redis/v9"
)

// Approval decisions reach the audit stream on the real Redis, with the
// deciding admin as actor (and the client address the edge signed, claim
// cip, not X-Forwarded-For) and the approval id as target; the code that
// was approved is in no event. On a Redis Cluster too: AUDIT_REDIS_ADDR
// listing its nodes, or one seed with AUDIT_REDIS_CLUSTER=true (the
// deployments' single name for every node; here a replica, which answers
// MOVED to every write a single-node client would send it), makes a Cluster
// client.
func TestApprovalDecisionsAreAudited(t *testing.T) {
	for _, store := range []struct {
		name    string
		stream  func(testing.TB) (string, string, redis.UniversalClient)
		cluster string // AUDIT_REDIS_CLUSTER
	}{
		{"redis", audittest.Stream, ""},
		{"redis cluster", audittest.ClusterStream, ""},
		{"redis cluster by one replica as the seed", replicaSeed, "true"},
	} {
		t.Run(store.name, func(t *testing.T) {
			addr, stream, rdb := store.stream(t)
			approvalDecisionsAreAudited(t, addr, stream, rdb, store.cluster)
		})
	}
}

// replicaSeed is audittest.ClusterStream with the address of one replica.
func replicaSeed(t testing.TB) (string, string, redis.UniversalClient) {
	t.Helper()
	addrs, stream, rdb := audittest.ClusterStream(t)
	for _, a := range strings.Split(addrs, ",") {
		c := redis.NewClient(&redis.Options{Addr: a})
		role, err := c.Do(context.Background(), "ROLE").Slice()
		_ = c.Close()
		if err == nil && len(role) > 0 && role[0] == "slave" {
			return a, stream, rdb
		}
	}
	t.Fatalf("no replica among %s", addrs)
	return "", "", nil
}

func approvalDecisionsAreAudited(t *testing.T, addr, stream string, rdb redis.UniversalClient, cluster string) {
	h := newHarness(t, withEnv("AUDIT_REDIS_ADDR", addr), withEnv("AUDIT_REDIS_STREAM", stream), withEnv("AUDIT_REDIS_CLUSTER", cluster))

	alice := h.mustConnect(h.jwtClient(h.userToken("alice", "user")))
	const secretCode = "print('audit-sweep-code-7f3a')"
	ids := make([]string, 3)
	for i := range ids {
		_, m := call(t, alice, "run_python", map[string]any{"code": secretCode + strings.Repeat(" ", i)})
		ids[i], _ = m["approval_id"].(string)
	}
	admin := h.edgeClient(user("carol", "admin", "user"))
	if resp, _ := h.do(admin, http.MethodPost, "/v1/approvals/"+ids[0], `{"decision":"approve"}`); resp.StatusCode != 200 {
		t.Fatalf("approve %d", resp.StatusCode)
	}
	if resp, _ := h.do(admin, http.MethodPost, "/v1/approvals/"+ids[1], `{"decision":"deny"}`); resp.StatusCode != 200 {
		t.Fatalf("deny %d", resp.StatusCode)
	}
	// alice is no admin; an admin alice deciding her own request is refused and audited
	self := h.edgeClient(user("alice", "admin", "user"))
	if resp, _ := h.do(self, http.MethodPost, "/v1/approvals/"+ids[2], ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("self approval %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.app.Audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	raw, got := audittest.Entries(t, rdb, stream)
	if len(got) != 3 {
		t.Fatalf("stream has %d entries, want 3", len(got))
	}
	for _, values := range raw {
		for _, v := range values {
			if strings.Contains(v.(string), "audit-sweep-code") {
				t.Fatal("the approved code reached the audit stream")
			}
		}
	}
	want := []struct {
		action  audit.Action
		target  string
		subject string
		outcome audit.Outcome
		reason  string
	}{
		{audit.ActionApprovalGranted, ids[0], "carol", audit.OutcomeSuccess, ""},
		{audit.ActionApprovalDenied, ids[1], "carol", audit.OutcomeSuccess, ""},
		{audit.ActionApprovalGranted, ids[2], "alice", audit.OutcomeDenied, "self_approval_forbidden"},
	}
	for i, w := range want {
		g := got[i]
		if g.Action != w.action || g.Target != w.target || g.Actor.Subject != w.subject || g.Outcome != w.outcome || g.Reason != w.reason || g.Source != "mcp-tools" ||
			g.Actor.IP != edgeClientIP {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

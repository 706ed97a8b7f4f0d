package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// llm-api on a Redis Cluster, configured either way the deployments can:
// REDIS_ADDR listing the nodes, or one seed address with REDIS_CLUSTER=true
// (compose's and k8s' single name redis:6379 for every node) — here a
// replica, which answers MOVED to every write a single-node client would
// send it. Either makes a Cluster client (pkg/redisconn) for the revocation
// announcements, the audit stream and its consumer group. A revocation
// reaches a subscriber on another node within 1 s (PUBLISH is broadcast
// over the cluster bus), and the key's audit events reach PostgreSQL
// through the stream.
func TestKeysRevocationsAndAuditOnARedisCluster(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	for _, c := range []struct {
		name    string
		addr    string
		cluster bool
	}{
		{"REDIS_ADDR lists every node", strings.Join(addrs, ","), false},
		{"REDIS_ADDR is one replica, REDIS_CLUSTER=true", replicaOf(t, addrs), true},
	} {
		t.Run(c.name, func(t *testing.T) { revocationsAndAuditOn(t, addrs, c.addr, c.cluster) })
	}
}

// replicaOf returns the address of a replica among the cluster's nodes.
func replicaOf(t *testing.T, addrs []string) string {
	t.Helper()
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		role, err := c.Do(context.Background(), "ROLE").Slice()
		_ = c.Close()
		if err == nil && len(role) > 0 && role[0] == "slave" {
			return a
		}
	}
	t.Fatalf("no replica among %v", addrs)
	return ""
}

func revocationsAndAuditOn(t *testing.T, addrs []string, redisAddr string, cluster bool) {
	var logs testenv.Buffer
	e := startAuditedOn(t, &logs, redisAddr, cluster)
	// A subscriber on every node: wherever llm-api's PUBLISH lands, each
	// of them gets it.
	var subs []<-chan revocation
	for _, a := range addrs {
		subs = append(subs, subscribe(t, a))
	}

	k := e.create(t, "ci")
	if st, b := call(t, http.MethodDelete, e.public.URL+"/auth/api-keys/"+k.ID, e.bearer(t), ""); st != 204 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	for _, ch := range subs {
		expectRevocation(t, ch, k.KID, time.Second)
	}
	if st, b := e.validate(t, k.Key); st != 401 || !strings.Contains(string(b), "key_revoked") {
		t.Fatalf("validate revoked: %d %s", st, b)
	}

	var p eventsPage
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p = e.events(t, "actor=alice"); len(p.Events) >= 2 {
			break
		}
	}
	// newest first
	if len(p.Events) != 2 || p.Events[0].Action != "apikey.revoked" || p.Events[0].Target != k.KID ||
		p.Events[1].Action != "apikey.created" || p.Events[1].Target != k.KID {
		t.Fatalf("audit events of alice in PostgreSQL: %+v, want the creation and the revocation", p.Events)
	}
	rdb, err := redisconn.New(redisconn.Config{Addrs: addrs})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if n := rdb.XLen(context.Background(), e.cfg.Audit.Stream).Val(); n < 2 {
		t.Fatalf("the cluster's stream holds %d entries", n)
	}
}

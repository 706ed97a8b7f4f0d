package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/redisconn"
	"github.com/edgeguard/edgeguard/pkg/testenv"
)

// llm-api on a Redis Cluster: REDIS_ADDR listing the nodes (no other
// setting) makes a Cluster client (pkg/redisconn) for the revocation
// announcements, the audit stream and its consumer group. A revocation
// reaches a subscriber on another node within 1 s (PUBLISH is broadcast
// over the cluster bus), and the key's audit events reach PostgreSQL
// through the stream.
func TestKeysRevocationsAndAuditOnARedisCluster(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	var logs testenv.Buffer
	e := startAuditedOn(t, &logs, strings.Join(addrs, ","))
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

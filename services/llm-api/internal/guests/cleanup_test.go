package guests_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/rs/zerolog"
)

func (d *memDir) add(id, username string, created time.Time, guest bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[id] = guests.User{ID: id, Username: username, CreatedAt: created, Guest: guest}
	d.order = append(d.order, id)
}

func TestSweepDeletesOnlyExpiredGuestsAcrossPages(t *testing.T) {
	clk := newClock()
	dir := newDir()
	now := clk.now()
	var expired []string
	for i := range 25 {
		id := fmt.Sprintf("old-%02d", i)
		dir.add(id, "guest-"+id, now.Add(-25*time.Hour), true)
		expired = append(expired, id)
		dir.add(fmt.Sprintf("new-%02d", i), fmt.Sprintf("guest-new-%02d", i), now.Add(-time.Hour), true)
	}
	// never deleted, however old: not named guest-…, not marked, no date
	dir.add("alice", "alice", now.Add(-1000*time.Hour), true)
	dir.add("unmarked", "guest-unmarked", now.Add(-1000*time.Hour), false)
	dir.add("undated", "guest-undated", time.Time{}, true)
	dir.add("just-young", "guest-just-young", now.Add(-24*time.Hour+time.Second), true)

	c := &guests.Cleaner{Directory: dir, TTL: 24 * time.Hour, PageSize: 7, Now: clk.now}
	res, err := c.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Listed != 54 || res.Expired != 25 || res.Deleted != 25 || res.Failed != 0 {
		t.Fatalf("result %+v", res)
	}
	slices.Sort(dir.deleted)
	if !slices.Equal(dir.deleted, expired) {
		t.Fatalf("deleted %v", dir.deleted)
	}
	if dir.listCalls != 8 { // ceil(54/7) pages
		t.Fatalf("%d list calls", dir.listCalls)
	}
	// a day later the young ones go too, the others never
	clk.add(24 * time.Hour)
	res, _ = c.Sweep(context.Background())
	if res.Deleted != 26 {
		t.Fatalf("second sweep %+v", res)
	}
	for _, keep := range []string{"alice", "unmarked", "undated"} {
		if _, ok := dir.users[keep]; !ok {
			t.Fatalf("%s deleted", keep)
		}
	}
}

func TestSweepIsBoundedAndCountsFailures(t *testing.T) {
	clk := newClock()
	dir := newDir()
	for i := range 10 {
		dir.add(fmt.Sprint(i), fmt.Sprintf("guest-%d", i), clk.now().Add(-48*time.Hour), true)
	}
	c := &guests.Cleaner{Directory: dir, TTL: time.Hour, PageSize: 3, MaxPerSweep: 4, Now: clk.now}
	res, err := c.Sweep(context.Background())
	if err != nil || res.Deleted != 4 || len(dir.users) != 6 {
		t.Fatalf("%+v %v", res, err)
	}
	dir.failOn = "delete"
	res, err = c.Sweep(context.Background())
	if err != nil || res.Failed != 4 || res.Deleted != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	dir.failOn = "list"
	if _, err := c.Sweep(context.Background()); err == nil {
		t.Fatal("listing failure not reported")
	}
}

// A guest another instance already deleted counts as deleted.
type racingDir struct{ *memDir }

func (r racingDir) DeleteUser(ctx context.Context, id string) error {
	_ = r.memDir.DeleteUser(ctx, id)
	return r.memDir.DeleteUser(ctx, id) // ErrUserNotFound
}

func TestSweepToleratesConcurrentCleaners(t *testing.T) {
	clk := newClock()
	dir := newDir()
	dir.add("a", "guest-a", clk.now().Add(-48*time.Hour), true)
	c := &guests.Cleaner{Directory: racingDir{dir}, TTL: time.Hour, Now: clk.now}
	if res, err := c.Sweep(context.Background()); err != nil || res.Deleted != 1 || res.Failed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestRunSweepsLogsCountsAndStops(t *testing.T) {
	clk := newClock()
	dir := newDir()
	dir.add("a", "guest-a", clk.now().Add(-48*time.Hour), true)
	logs := &syncBuf{}
	c := &guests.Cleaner{Directory: dir, TTL: time.Hour, Interval: 10 * time.Millisecond, Now: clk.now,
		Logger: zerolog.New(logs).Level(zerolog.DebugLevel)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "guest cleanup") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	out := logs.String()
	if !strings.Contains(out, `"level":"info"`) || !strings.Contains(out, `"deleted":1`) {
		t.Fatalf("counts not logged: %s", out)
	}
	if len(dir.users) != 0 {
		t.Fatal("not deleted")
	}
}

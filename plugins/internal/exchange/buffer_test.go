package exchange

import (
	"fmt"
	"testing"
)

func TestBufferSetsClearsAndStopsAtExit(t *testing.T) {
	var b Buffer
	b.SetUpstreamHeader("X-A", "1")
	b.SetUpstreamHeader("x-a", "2") // replaces, any case
	b.SetUpstreamHeader("X-B", "3")
	b.ClearUpstreamHeader("X-B") // drops the earlier set
	b.ClearUpstreamHeader("x-b") // each name once
	b.SetResponseHeader("Vary", "a")
	b.SetResponseHeader("VARY", "b")
	if got := fmt.Sprint(b.Upstream, b.Clears, b.Response); got != "[{x-a 2}] [X-B] [{VARY b}]" {
		t.Fatalf("buffered %s", got)
	}
	if IndexHeader(b.Upstream, "X-A") != 0 || IndexHeader(b.Upstream, "X-B") != -1 {
		t.Fatal("IndexHeader")
	}
	if !b.MarkExited() || b.MarkExited() || !b.Exited() {
		t.Fatal("MarkExited must report only the first exit")
	}
	b.Reset()
	b.SetUpstreamHeader("X-C", "4")
	b.ClearUpstreamHeader("X-D")
	b.SetResponseHeader("X-E", "5")
	if b.Upstream != nil || b.Clears != nil || b.Response != nil {
		t.Fatalf("writes after exit were buffered: %v %v %v", b.Upstream, b.Clears, b.Response)
	}
}

package testenv

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestRequireSkipsLocallyWhenUnset(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("EDGEGUARD_TEST_NOTHING", "")
	ran := false
	t.Run("inner", func(t *testing.T) {
		Require(t, "EDGEGUARD_TEST_NOTHING")
		ran = true
	})
	if ran {
		t.Fatal("Require must skip when the variable is unset")
	}
}

func TestRequireReturnsTheValue(t *testing.T) {
	t.Setenv("EDGEGUARD_TEST_SOMETHING", "x")
	if Require(t, "EDGEGUARD_TEST_SOMETHING") != "x" {
		t.Fatal("value")
	}
}

func TestBufferTakesConcurrentWriters(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = b.Write([]byte("ab")) }()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab", 8) {
		t.Fatalf("got %q", got)
	}
}

func TestRecordSecret(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(VarSecretsDir, dir)
	RecordSecret("short", "a-long-enough-secret-value", "another-long-secret-value")
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("secrets-%d.txt", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 (short values are not kept)", len(lines))
	}
	if strings.Contains(string(b), "a-long-enough-secret-value") {
		t.Error("the registry holds a value in clear")
	}
	t.Setenv(VarSecretsDir, "")
	RecordSecret("never-written-anywhere-value") // no folder: nothing, no panic
}

func TestScrapeReadsEverySeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "# HELP a_total A.\n# TYPE a_total counter\na_total{route=\"/x\",status=\"200\"} 3\nb 1.5e+06\n")
	}))
	defer srv.Close()
	got := Scrape(t, srv.URL)
	if len(got) != 2 || got[`a_total{route="/x",status="200"}`] != 3 || got["b"] != 1.5e6 {
		t.Fatalf("%v", got)
	}
}

func TestMasterOfReadsClusterNodes(t *testing.T) {
	const nodes = `07c37dfe 127.0.0.1:30004@31004 slave e7d1eecc 0 1426238317239 4 connected
67ed2db8 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b36 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [16000->-e7d1eecc]
e7d1eecc 127.0.0.1:30001@31001 master,fail - 1426238316232 1426238316232 1 disconnected 0-5460
824fe116 127.0.0.1:30005@31005 myself,master - 0 1426238316232 7 connected 0-5459 5460
`
	for slot, want := range map[int]string{0: "127.0.0.1:30005", 5460: "127.0.0.1:30005", 5461: "127.0.0.1:30002",
		16383: "127.0.0.1:30003", 20000: ""} {
		if got := masterOf(nodes, slot); got != want {
			t.Errorf("slot %d: %q, want %q", slot, got, want)
		}
	}
}

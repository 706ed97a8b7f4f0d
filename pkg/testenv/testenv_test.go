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

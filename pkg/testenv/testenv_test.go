package testenv

import (
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

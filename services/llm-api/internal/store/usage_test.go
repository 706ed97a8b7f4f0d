package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
)

func entry(id, sub, key, model, day string, p, c, nano int64, status string) ledger.Entry {
	return ledger.Entry{Record: budget.Record{ID: id, Subject: sub, KeyID: key, Model: model, Day: day},
		PromptTokens: p, CompletionTokens: c, Tokens: p + c, Nano: nano, Reserved: p + c + 10, Status: status, At: time.Now()}
}

func TestUsageIsStoredOnceAndSummed(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id := func(n byte) string {
		return string([]byte{'a', 'b', 'c', 'd', 'e', 'f', '0', '1', '2', '3', '4', '5', '6', '7', '8', n}) + "0123456789abcdef"
	}
	batch := []ledger.Entry{
		entry(id('1'), "alice", "", "small", "2026-12-06", 10, 20, 25_000, ledger.StatusSettled),
		entry(id('2'), "alice", "", "small", "2026-12-07", 5, 5, 1_000_000_001, ledger.StatusSettled),
		entry(id('3'), "alice", "kid00001", "small", "2026-12-07", 1, 2, 3, ledger.StatusSwept),
		entry(id('4'), "bob", "", "large", "2026-12-07", 7, 0, 0, ledger.StatusRefused),
	}
	if err := s.InsertUsage(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// a retried batch (and one more entry) stores the new one only
	if err := s.InsertUsage(ctx, append(batch, entry(id('5'), "alice", "", "small", "2026-12-07", 1, 1, 1, ledger.StatusAborted))); err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.DateOnly, "2026-12-01")
	to, _ := time.Parse(time.DateOnly, "2026-12-08")
	rows, err := s.Usage(ctx, ledger.Query{Subject: "alice", From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Row{
		{Day: "2026-12-07", Subject: "alice", KeyID: "", Model: "small", Requests: 2, PromptTokens: 6, CompletionTokens: 6, Tokens: 12, USD: "1.000000002"},
		{Day: "2026-12-07", Subject: "alice", KeyID: "kid00001", Model: "small", Requests: 1, PromptTokens: 1, CompletionTokens: 2, Tokens: 3, USD: "0.000000003", Flagged: 1},
		{Day: "2026-12-06", Subject: "alice", KeyID: "", Model: "small", Requests: 1, PromptTokens: 10, CompletionTokens: 20, Tokens: 30, USD: "0.000025"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
	all, err := s.Usage(ctx, ledger.Query{From: from, To: to})
	if err != nil || len(all) != 4 {
		t.Fatalf("%+v %v", all, err)
	}
}

func TestUsageRefusesInvalidEntries(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	good := "0123456789abcdef0123456789abcdef"
	for name, e := range map[string]ledger.Entry{
		"bad day":    entry(good, "a", "", "m", "yesterday", 1, 1, 1, ledger.StatusSettled),
		"bad id":     entry("client-chosen", "a", "", "m", "2026-12-07", 1, 1, 1, ledger.StatusSettled),
		"bad status": entry(good, "a", "", "m", "2026-12-07", 1, 1, 1, "free"),
		"negative":   entry(good, "a", "", "m", "2026-12-07", -1, 1, 1, ledger.StatusSettled),
	} {
		if err := s.InsertUsage(ctx, []ledger.Entry{e}); err == nil {
			t.Errorf("%s: stored", name)
		} else if name == "bad day" && !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestUSDIsExact(t *testing.T) {
	for nano, want := range map[int64]string{0: "0", 1: "0.000000001", 1_500_000_000: "1.5", 25_000: "0.000025", 7_000_000_000_000: "7000"} {
		if got := store.USD(nano); got != want {
			t.Errorf("%d: %s, want %s", nano, got, want)
		}
	}
}

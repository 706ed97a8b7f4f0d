package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/pgtest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
)

func open(t *testing.T) *store.PG {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPGStoreContract(t *testing.T) {
	keystest.StoreContract(t, func(t *testing.T) keystest.Store { return open(t) })
}

func TestMigrationsApplyToAnEmptyDatabaseAndAreIdempotent(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, pgtest.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 {
		t.Fatal("no migration applied to an empty schema")
	}
	again, err := s.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v (err %v)", again, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentMigrationsApplyOnce(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	errs := make(chan error, 3)
	total := make(chan int, 3)
	for range 3 {
		go func() {
			s, err := store.Open(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			a, err := s.Migrate(ctx)
			total <- len(a)
			errs <- err
		}()
	}
	n := 0
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		n += <-total
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	if n != len(files) {
		t.Fatalf("migrations applied %d times in all, want %d (each once)", n, len(files))
	}
}

func TestOpenNeverEchoesTheDSN(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://u:hunter2-secret@127.0.0.1:1/db?sslmode=bogus")
	if err == nil {
		t.Fatal("bad DSN accepted")
	}
	if got := err.Error(); strings.Contains(got, "hunter2") {
		t.Fatalf("error echoes the password: %s", got)
	}
}

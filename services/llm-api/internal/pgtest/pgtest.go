// Package pgtest gives integration tests a throw-away PostgreSQL schema on
// the server scripts/postgres.sh starts (EDGEGUARD_TEST_PG_DSN). Without it
// the tests skip, or fail under CI=true. For tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BaseDSN returns EDGEGUARD_TEST_PG_DSN, skipping the test when it is unset
// (failing it under CI=true).
func BaseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("EDGEGUARD_TEST_PG_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EDGEGUARD_TEST_PG_DSN is not set under CI=true (make test starts PostgreSQL)")
		}
		t.Skip("EDGEGUARD_TEST_PG_DSN not set: run `make test` or scripts/postgres.sh start")
	}
	return dsn
}

// Schema creates an empty schema, dropped when the test ends, and returns
// a DSN whose search_path is that schema: every table the code under test
// creates lands there, so tests do not see each other's data.
func Schema(t testing.TB) string {
	t.Helper()
	base := BaseDSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			_ = c.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal("EDGEGUARD_TEST_PG_DSN must be a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

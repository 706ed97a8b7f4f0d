package e2e

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// TestMain runs the suites, then fails the run if any secret they used — the
// bootstrap admin's password, client secrets, test users' passwords, every
// token Keycloak issued to them — appears in Keycloak's log.
func TestMain(m *testing.M) {
	code := m.Run()
	if path := os.Getenv("KEYCLOAK_LOG_FILE"); path != "" && code == 0 {
		if leaks, err := leakedInto(path, used.all()); err != nil {
			fmt.Fprintf(os.Stderr, "reading Keycloak's log: %v\n", err)
			code = 1
		} else if leaks > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d secrets used by the suites appear in Keycloak's log %s\n", leaks, path)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedInto counts the secrets that occur in the file at path.
func leakedInto(path string, secrets []string) (int, error) {
	log, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range secrets {
		if bytes.Contains(log, []byte(s)) {
			n++
		}
	}
	return n, nil
}

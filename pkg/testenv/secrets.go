package testenv

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// VarSecretsDir is where RecordSecret writes (scripts/test.sh sets it; the
// sweep at the end of `make test` reads it).
const VarSecretsDir = "EDGEGUARD_TEST_SECRETS_DIR"

// MinSecretLen is the shortest value RecordSecret keeps: shorter strings
// would match ordinary log text by chance.
const MinSecretLen = 12

var recordMu sync.Mutex

// RecordSecret registers values a test used as secrets (passwords, tokens,
// keys, peppers) for the whole-run sweep: after every module's tests,
// scripts/test.sh fails the run if any registered value appears in any log
// of the run (the go test output of every module, the components' logs).
// Without EDGEGUARD_TEST_SECRETS_DIR it does nothing. Values are stored
// base64-encoded, one per line, in a 0600 file per test process inside the
// run's temporary folder.
func RecordSecret(values ...string) {
	dir := os.Getenv(VarSecretsDir)
	if dir == "" {
		return
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("secrets-%d.txt", os.Getpid())), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	for _, v := range values {
		if len(v) >= MinSecretLen {
			_, _ = f.WriteString(base64.StdEncoding.EncodeToString([]byte(v)) + "\n")
		}
	}
}

// KeepForSweep reports whether the run keeps what tests wrote to the shared
// Redis for the whole-run secret sweep (scripts/test.sh dumps every audit
// stream into it): tests then leave their audit streams in place instead of
// deleting them.
func KeepForSweep() bool { return os.Getenv(VarSecretsDir) != "" }

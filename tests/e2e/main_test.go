package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/tests/e2e/internal/devstack"
)

// TestMain runs the suites, stops the dev stack if one ran, then fails the
// run if any secret the suites used — the bootstrap admin's password, client
// secrets, test users' passwords, every token Keycloak issued, every API key
// created, and every secret file of the dev stack (internal token, pepper,
// signing keys, the database password) — appears in any log: Keycloak's and
// those of every process of the dev stack (gateway, services, stub), which
// run at LOG_LEVEL=debug.
func TestMain(m *testing.M) {
	code := m.Run()
	logs := []string{}
	if path := os.Getenv("KEYCLOAK_LOG_FILE"); path != "" {
		logs = append(logs, path)
	}
	logs = append(logs, extraLogs.all()...)
	if edge != nil {
		files, err := edge.LogFiles()
		if err == nil {
			logs = append(logs, files...)
		}
		secrets, serr := stackSecrets(edge.Stack)
		if err := edge.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the dev stack: %v\n", err)
			code = 1
		}
		if err != nil || serr != nil || len(files) == 0 {
			fmt.Fprintf(os.Stderr, "the dev stack's logs (%d files) or secrets: %v %v\n", len(files), err, serr)
			code = 1
		}
		for _, s := range secrets {
			used.add(s)
		}
	}
	if code == 0 {
		for _, path := range logs {
			if leaks, err := leakedInto(path, used.all()); err != nil {
				fmt.Fprintf(os.Stderr, "reading %s: %v\n", path, err)
				code = 1
			} else if leaks > 0 {
				fmt.Fprintf(os.Stderr, "FAIL: %d secrets used by the suites appear in the log %s\n", leaks, path)
				code = 1
			}
		}
		fmt.Fprintf(os.Stderr, "secrets sweep: %d secrets, %d logs, no leak found\n", len(used.all()), len(logs))
	}
	if edge != nil && code == 0 {
		_ = os.RemoveAll(edge.Dir()) // kept after a failure, for its logs
	}
	for _, dir := range extraLogs.dirs {
		if code == 0 {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(os.Stderr, "kept %s (logs)\n", dir)
		}
	}
	os.Exit(code)
}

// stackSecrets reads the dev stack's secret files: each line of at least 16
// characters that is not PEM armour (so a PEM key's base64 body lines count:
// the mTLS keys of the edge, the services and the dev CA), and the password
// inside the database URL. The public JWKS and the certificates (*.crt) are
// not secret.
func stackSecrets(st *devstack.Stack) ([]string, error) {
	files, err := st.SecretFiles()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, ".jwks.json") || strings.HasSuffix(f, ".crt") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			line = strings.TrimSpace(line)
			if len(line) < 16 || strings.HasPrefix(line, "-----") {
				continue
			}
			out = append(out, line)
			if u, err := url.Parse(line); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 8 {
					out = append(out, pw)
				}
			}
		}
	}
	return out, nil
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

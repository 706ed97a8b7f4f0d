// Command secret-sweep fails when a log of the test run holds a secret:
//
//	secret-sweep -secrets DIR LOG_OR_DIR...
//
// DIR holds the values tests registered (pkg/testenv.RecordSecret); every
// file (or every file below a directory) given is scanned for them and for
// anything shaped like a signed JWT or a valid edgeguard API key. Findings
// name the file and line, never the value. scripts/test.sh runs it after
// every module's tests. Exit 0: clean; 1: findings; 2: usage or I/O error.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/edgeguard/edgeguard/tests/deploy/secretsweep"
)

func main() {
	dir := flag.String("secrets", "", "the folder of registered secrets (EDGEGUARD_TEST_SECRETS_DIR)")
	flag.Parse()
	if *dir == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: secret-sweep -secrets DIR LOG_OR_DIR...")
		os.Exit(2)
	}
	secrets, err := secretsweep.LoadRegistered(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "secret-sweep:", err)
		os.Exit(2)
	}
	found, files, err := secretsweep.Files(flag.Args(), secrets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "secret-sweep:", err)
		os.Exit(2)
	}
	for _, f := range found {
		fmt.Fprintln(os.Stderr, "secret-sweep: FOUND", f)
	}
	if len(found) > 0 {
		fmt.Fprintf(os.Stderr, "secret-sweep: %d secrets in the logs (%d registered secrets, %d files)\n", len(found), len(secrets), files)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "secret-sweep: clean: %d registered secrets and every JWT/API-key shape, %d log files\n", len(secrets), files)
}

// Command gen-secrets writes the secret files of a compose or Kubernetes
// deployment into a directory (see package secretgen); compose/gen-secrets.sh
// runs it. Existing files are kept.
//
//	gen-secrets [-db-host postgres:5432] DIR
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/edgeguard/edgeguard/tests/deploy/secretgen"
)

func main() {
	db := flag.String("db-host", secretgen.DefaultDatabaseHostPort, "PostgreSQL host:port in llm-api's database URL")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: gen-secrets [-db-host host:port] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := secretgen.Generate(flag.Arg(0), secretgen.Options{DatabaseHostPort: *db}); err != nil {
		fmt.Fprintln(os.Stderr, "gen-secrets:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen-secrets: %d files in %s (existing files kept)\n", len(secretgen.All()), flag.Arg(0))
}

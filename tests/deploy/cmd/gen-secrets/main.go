// Command gen-secrets writes the secret files of a compose or Kubernetes
// deployment, and of `make dev`, into a directory (see package secretgen):
// passwords, tokens, the edge identity key pair and the mTLS certificates
// of the hop Kong → services (a development CA, the edge's client
// certificate, a server certificate per service). compose/gen-secrets.sh
// and scripts/dev.sh run it. Existing files are kept; certificates that
// expire within two days are renewed.
//
//	gen-secrets [-db-host postgres:5432] [-kong-yml kong/kong.yml] DIR
//
// With -kong-yml, DIR/kong.yml is that file with its services CA (the
// placeholder of ca_certificates) replaced by DIR/mtls_ca.crt: compose
// mounts it as Kong's declarative config, Kubernetes as a ConfigMap.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/edgeguard/edgeguard/tests/deploy/secretgen"
)

func main() {
	db := flag.String("db-host", secretgen.DefaultDatabaseHostPort, "PostgreSQL host:port in llm-api's database URL")
	kongYML := flag.String("kong-yml", "", "render this kong.yml with the generated services CA into DIR/kong.yml")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: gen-secrets [-db-host host:port] [-kong-yml kong/kong.yml] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	opt := secretgen.Options{DatabaseHostPort: *db}
	var renewed []string
	opt.Renewed = &renewed
	if *kongYML != "" {
		b, err := os.ReadFile(*kongYML)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen-secrets:", err)
			os.Exit(1)
		}
		opt.KongYML = b
	}
	if err := secretgen.Generate(flag.Arg(0), opt); err != nil {
		fmt.Fprintln(os.Stderr, "gen-secrets:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "gen-secrets: %d files in %s (existing files kept)\n", len(secretgen.All()), flag.Arg(0))
	if len(renewed) > 0 {
		fmt.Fprintf(os.Stderr, "gen-secrets: certificates issued: %s (restart what reads them: Kong reads its client certificate at start)\n", strings.Join(renewed, ", "))
	}
	if *kongYML != "" {
		fmt.Fprintf(os.Stderr, "gen-secrets: %s/%s rendered from %s with the services CA\n", flag.Arg(0), secretgen.KongYML, *kongYML)
	}
}

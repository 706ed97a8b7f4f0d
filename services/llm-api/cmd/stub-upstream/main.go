// Command stub-upstream serves package llmstub, a fake OpenAI-compatible
// model server for development (LLM_UPSTREAM_URL=http://localhost:8000/v1).
// Flag -addr sets the listen address (default 127.0.0.1:8000). Not for
// production.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmstub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: &llmstub.Stub{}, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("stub-upstream listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}

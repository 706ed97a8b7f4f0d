// Command stub-upstream serves package llmstub, a fake OpenAI-compatible
// model server for development (LLM_UPSTREAM_URL=http://localhost:8000/v1).
// Flags: -addr, the listen address (default 127.0.0.1:8000);
// -answer-tokens, a choice's natural length in tokens (default 64);
// -chunk-interval, the pause between a stream's chunks (default 0). What it
// produced: GET /_stub/usage. Not for production.
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
	answer := flag.Int("answer-tokens", llmstub.DefaultAnswerTokens, "a choice's natural length in tokens (a cap cuts it)")
	interval := flag.Duration("chunk-interval", 0, "pause between a stream's chunks, e.g. 20ms")
	flag.Parse()
	if *answer < 1 || *interval < 0 {
		log.Fatal("-answer-tokens must be at least 1 and -chunk-interval not negative")
	}
	stub := &llmstub.Stub{AnswerTokens: *answer, ChunkInterval: *interval}
	srv := &http.Server{Addr: *addr, Handler: stub, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("stub-upstream listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}

// Package llmstub is a fake OpenAI-compatible model server (the subset of
// vLLM's API llm-api proxies) for development and tests: GET /v1/models,
// POST /v1/chat/completions (plain and "stream": true as server-sent
// events), /v1/completions and /v1/embeddings. It records the headers of
// every request so tests can assert what reached the upstream, and it can be
// told to fail or stall, by model name or by header:
//
//   - model "fail-500" or header X-Stub-Fail: 500 → that status (any
//     400..599) with an error body carrying Secret (tests check it is never
//     echoed to clients);
//   - model "stall" or header X-Stub-Stall: 1 → no answer until the request
//     is cancelled;
//   - model "stall-stream" → a streamed answer that sends one chunk and then
//     stalls.
//
// GET /_stub/requests lists what it recorded (methods, paths, headers).
//
// It is not a model and not for production; cmd/stub-upstream serves it.
package llmstub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Secret appears in the stub's error bodies; it must never reach a client.
const Secret = "stub-internal-detail-7f3a"

// Request is what the stub recorded of one request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Stub is the fake upstream. The zero value is ready; set fields before use.
type Stub struct {
	// Hold, when set, is waited on after the first streamed chunk: a test
	// reads that chunk, then closes Hold to let the rest come.
	Hold chan struct{}
	// Chunks is the number of content chunks of a stream (default 3).
	Chunks int

	mu   sync.Mutex
	reqs []Request
}

var _ http.Handler = (*Stub)(nil)

// Requests returns the recorded requests, oldest first.
func (s *Stub) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Last returns the newest recorded request (zero Request if none).
func (s *Stub) Last() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		return Request{}
	}
	return s.reqs[len(s.reqs)-1]
}

type body struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
}

// RecordPath answers GET with the recorded requests' methods, paths and
// headers as JSON (no bodies), for tests that run the stub as a process
// (cmd/stub-upstream) and must assert what reached the upstream.
const RecordPath = "/_stub/requests"

func (s *Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == RecordPath {
		type rec struct {
			Method string      `json:"method"`
			Path   string      `json:"path"`
			Header http.Header `json:"header"`
		}
		out := []rec{}
		for _, q := range s.Requests() {
			out = append(out, rec{q.Method, q.Path, q.Header})
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	raw := make([]byte, 0, 512)
	if r.Body != nil {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			raw = append(raw, buf[:n]...)
			if err != nil || len(raw) > 64<<20 {
				break
			}
		}
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: raw})
	s.mu.Unlock()

	var b body
	if r.Method == http.MethodPost {
		if err := json.Unmarshal(raw, &b); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"message": "invalid JSON body", "type": "invalid_request_error", "code": 400}})
			return
		}
	}
	if st, err := strconv.Atoi(r.Header.Get("X-Stub-Fail")); err == nil || strings.HasPrefix(b.Model, "fail-") {
		if err != nil {
			st, _ = strconv.Atoi(strings.TrimPrefix(b.Model, "fail-"))
		}
		if st < 400 || st > 599 {
			st = http.StatusInternalServerError
		}
		writeJSON(w, st, map[string]any{"error": map[string]any{
			"message": "stub failure " + Secret, "type": "stub_error", "code": st}})
		return
	}
	if r.Header.Get("X-Stub-Stall") != "" || b.Model == "stall" {
		<-r.Context().Done()
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
			{"id": "stub-model", "object": "model", "created": 0, "owned_by": "edgeguard-stub"}}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" && b.Stream:
		s.stream(w, r, b.Model)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		writeJSON(w, http.StatusOK, map[string]any{"id": "chatcmpl-stub", "object": "chat.completion", "created": 0,
			"model": b.Model, "choices": []map[string]any{{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": "Hello from the stub."}}},
			"usage": map[string]int{"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/completions":
		writeJSON(w, http.StatusOK, map[string]any{"id": "cmpl-stub", "object": "text_completion", "created": 0,
			"model": b.Model, "choices": []map[string]any{{"index": 0, "text": " stub text", "finish_reason": "stop"}}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/embeddings":
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": b.Model, "data": []map[string]any{
			{"object": "embedding", "index": 0, "embedding": []float64{0.1, 0.2, 0.3}}}})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
			"message": "no such endpoint", "type": "invalid_request_error", "code": 404}})
	}
}

func (s *Stub) stream(w http.ResponseWriter, r *http.Request, model string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	n := s.Chunks
	if n <= 0 {
		n = 3
	}
	fl, _ := w.(http.Flusher)
	for i := range n {
		chunk := map[string]any{"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
			"choices": []map[string]any{{"index": 0, "delta": map[string]any{"content": fmt.Sprintf("tok%d ", i)}}}}
		b, _ := json.Marshal(chunk)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
		if i == 0 {
			if model == "stall-stream" {
				<-r.Context().Done()
				return
			}
			if s.Hold != nil {
				select {
				case <-s.Hold:
				case <-r.Context().Done():
					return
				case <-time.After(time.Minute):
				}
			}
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

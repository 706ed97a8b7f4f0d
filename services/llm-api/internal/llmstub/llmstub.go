// Package llmstub is a fake OpenAI-compatible model server (the subset of
// vLLM's API llm-api proxies) for development and tests: GET /v1/models,
// POST /v1/chat/completions and /v1/completions (plain, or "stream": true
// as server-sent events) and /v1/embeddings. Its answers have vLLM's
// shapes and a deterministic, realistic usage, and it counts what it
// produced, independently of llm-api, so tests can check that a token
// budget was never exceeded.
//
// Tokens. The stub has no tokenizer; its rule is:
//
//   - a text is ceil(bytes/4) tokens (TextTokens; at least 1 when not
//     empty);
//   - a chat prompt is 4 tokens per message (MessageTokens, the template)
//     plus the tokens of every message's text — string content and "text"
//     parts; image parts, names, tool calls and tools count nothing;
//   - a completions prompt or an embeddings input is its text's tokens, or
//     the number of its token ids, plus 2 (PromptTokens); a batch is the sum.
//
// It never exceeds llmrequest's tokenizer-free bound with the default
// options (tested).
//
// Answers. Every choice is the words "tok0 tok1 tok2 …", one token a word
// (Answer), min(cap, AnswerTokens) tokens long — cap is chat's
// max_completion_tokens, else max_tokens — with finish_reason "length"
// when the cap cut it, else "stop". A request has n choices (1..128;
// best_of is ignored); a completions batch has n per prompt, indexed
// prompt×n+choice as vLLM numbers them. Plain answers carry usage
// {prompt_tokens, completion_tokens, total_tokens} (embeddings:
// {prompt_tokens, total_tokens}). A stream, in vLLM's order: for chat, one
// chunk per choice with delta {"role":"assistant","content":""}; then one
// chunk per token (Chunks sets fewer), choices interleaved, a choice's last
// chunk with its finish_reason; with stream_options.include_usage a final
// chunk with "choices": [] and the request's usage; with
// continuous_usage_stats as well (vLLM honours it only with
// include_usage), every chunk before it carries usage too — vLLM's
// figure, the chunk's own: its prompt's tokens and its choice's
// completion tokens so far, which is not the request's total when n > 1
// or with a batch; then data: [DONE].
//
// Counting. Produced (and GET /_stub/usage, JSON {"prompt_tokens",
// "completion_tokens", "requests"}) totals over all requests the prompt
// tokens of every answer it began (status 200 sent) and the completion
// tokens it delivered: a plain answer's, and of a stream only the chunks
// written and flushed before the client went away or the stream failed.
// POST /_stub/usage/reset (ResetUsage) zeroes it.
//
// Failure modes, by model name or by header:
//
//   - model "fail-<status>" or header X-Stub-Fail: <status> → that status
//     (any 400..599, else 500) with an error body carrying Secret (tests
//     check it is never echoed to clients);
//   - model "stall" or header X-Stub-Stall: 1 → no answer until the
//     request is cancelled;
//   - model "stall-stream" → a stream that sends its first content chunk
//     and then stalls;
//   - model "fail-mid-stream" (after 2 events) or header
//     X-Stub-Fail-After: K → a stream closes the connection abruptly
//     after K events (role, content or usage chunks; before [DONE] if it
//     has fewer), a plain answer is never sent (the connection closes).
//
// GET /_stub/requests lists what it recorded (methods, paths, headers).
//
// It is not a model and not for production; cmd/stub-upstream serves it.
package llmstub

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Secret appears in the stub's error bodies; it must never reach a client.
const Secret = "stub-internal-detail-7f3a"

// The models that are failure modes (besides "fail-<status>" and "stall").
const (
	ModelStallStream   = "stall-stream"
	ModelFailMidStream = "fail-mid-stream"
	// FailMidStreamAfter is the events ModelFailMidStream sends.
	FailMidStreamAfter = 2
)

// Request is what the stub recorded of one request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Usage is what the stub produced (Produced, GET /_stub/usage).
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// Requests is the number of answers begun (status 200 sent).
	Requests int64 `json:"requests"`
}

// Stub is the fake upstream. The zero value is ready; set fields before use.
type Stub struct {
	// Hold, when set, is waited on after a stream's first content chunk: a
	// test reads that chunk, then closes Hold to let the rest come.
	Hold chan struct{}
	// Chunks, when > 0, is the most content chunks of a choice in a stream
	// (tokens spread over them); default one chunk per token, as vLLM.
	Chunks int
	// AnswerTokens is a choice's natural length, in tokens, when no cap
	// cuts it (default DefaultAnswerTokens).
	AnswerTokens int
	// ChunkInterval is waited before each content chunk after a stream's
	// first (default none).
	ChunkInterval time.Duration

	mu    sync.Mutex
	reqs  []Request
	usage Usage
}

var _ http.Handler = (*Stub)(nil)

func (s *Stub) answerTokens() int {
	if s.AnswerTokens > 0 {
		return s.AnswerTokens
	}
	return DefaultAnswerTokens
}

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

// Produced returns the prompt and completion tokens produced so far (see
// the package comment).
func (s *Stub) Produced() (prompt, completion int64) {
	u := s.Usage()
	return u.PromptTokens, u.CompletionTokens
}

// Usage returns what was produced so far, with the number of answers.
func (s *Stub) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage
}

// ResetUsage zeroes what Usage and Produced report.
func (s *Stub) ResetUsage() {
	s.mu.Lock()
	s.usage = Usage{}
	s.mu.Unlock()
}

// count adds produced tokens; answer: one more answer begun.
func (s *Stub) count(prompt, completion int64, answer bool) {
	s.mu.Lock()
	s.usage.PromptTokens += prompt
	s.usage.CompletionTokens += completion
	if answer {
		s.usage.Requests++
	}
	s.mu.Unlock()
}

// The stub's own endpoints (never recorded).
const (
	// RecordPath answers GET with the recorded requests' methods, paths
	// and headers as JSON (no bodies), for tests that run the stub as a
	// process (cmd/stub-upstream) and must assert what reached the
	// upstream.
	RecordPath = "/_stub/requests"
	// UsagePath answers GET with Usage as JSON.
	UsagePath = "/_stub/usage"
	// UsageResetPath: POST zeroes the usage (204).
	UsageResetPath = "/_stub/usage/reset"
)

// maxBody bounds what the stub reads of a body.
const maxBody = 64 << 20

func (s *Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == RecordPath:
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
	case r.Method == http.MethodGet && r.URL.Path == UsagePath:
		writeJSON(w, http.StatusOK, s.Usage())
		return
	case r.Method == http.MethodPost && r.URL.Path == UsageResetPath:
		s.ResetUsage()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var raw []byte
	if r.Body != nil {
		raw, _ = io.ReadAll(io.LimitReader(r.Body, maxBody))
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: raw})
	s.mu.Unlock()

	var top map[string]json.RawMessage
	var model string
	if r.Method == http.MethodPost {
		if err := json.Unmarshal(raw, &top); err != nil || top == nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", "invalid JSON body")
			return
		}
		_ = json.Unmarshal(top["model"], &model) // checked by parseCall
	}
	if st, err := strconv.Atoi(r.Header.Get("X-Stub-Fail")); err == nil || (strings.HasPrefix(model, "fail-") && model != ModelFailMidStream) {
		if err != nil {
			st, _ = strconv.Atoi(strings.TrimPrefix(model, "fail-"))
		}
		if st < 400 || st > 599 {
			st = http.StatusInternalServerError
		}
		writeError(w, st, "stub_error", "", "stub failure "+Secret)
		return
	}
	if r.Header.Get("X-Stub-Stall") != "" || model == "stall" {
		<-r.Context().Done()
		return
	}
	failAfter := -1
	if model == ModelFailMidStream {
		failAfter = FailMidStreamAfter
	}
	if k, err := strconv.Atoi(r.Header.Get("X-Stub-Fail-After")); err == nil && k >= 0 {
		failAfter = k
	}
	var ep endpoint
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
			{"id": "stub-model", "object": "model", "created": 0, "owned_by": "edgeguard-stub"}}})
		return
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		ep = chat
	case r.Method == http.MethodPost && r.URL.Path == "/v1/completions":
		ep = completions
	case r.Method == http.MethodPost && r.URL.Path == "/v1/embeddings":
		ep = embeddings
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "no such endpoint")
		return
	}
	c, err := parseCall(ep, top)
	if err != nil {
		var br *badRequest
		errors.As(err, &br)
		writeError(w, http.StatusBadRequest, "invalid_request_error", br.param, br.msg)
		return
	}
	switch {
	case c.stream && ep != embeddings:
		s.stream(w, r, c, failAfter)
	case failAfter >= 0:
		abort(w)
	default:
		s.plain(w, c)
	}
}

func writeError(w http.ResponseWriter, status int, typ, param, msg string) {
	e := map[string]any{"message": msg, "type": typ, "code": status}
	if param != "" {
		e["param"] = param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

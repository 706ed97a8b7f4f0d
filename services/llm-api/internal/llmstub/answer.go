package llmstub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// word is the answer's i-th token: "tok0", " tok1", " tok2", …
func word(i int) string {
	if i == 0 {
		return "tok0"
	}
	return " tok" + strconv.Itoa(i)
}

// Answer is the text of a choice of the given number of tokens:
// "tok0 tok1 … tok<tokens-1>".
func Answer(tokens int) string {
	var b strings.Builder
	for i := range tokens {
		b.WriteString(word(i))
	}
	return b.String()
}

// seq is one generated sequence (a choice of a prompt).
type seq struct {
	index  int   // the choice's index in the answer
	prompt int64 // the tokens of its prompt
	tokens int   // its completion tokens
	finish string
}

// seqs lays out the answer: n choices per prompt, indexed prompt×n+choice
// (vLLM's numbering), each min(cap, natural) tokens long.
func (c call) seqs(natural int) []seq {
	tokens, finish := natural, "stop"
	if c.cap > 0 && c.cap < natural {
		tokens, finish = c.cap, "length"
	}
	out := make([]seq, 0, len(c.prompts)*c.n)
	for p, pt := range c.prompts {
		for i := range c.n {
			out = append(out, seq{index: p*c.n + i, prompt: pt, tokens: tokens, finish: finish})
		}
	}
	return out
}

// usage is the usage object of an answer or a chunk; embeddings have no
// completion tokens.
type usage struct {
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens *int64 `json:"completion_tokens,omitempty"`
	TotalTokens      int64  `json:"total_tokens"`
}

func newUsage(prompt, completion int64) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: &completion, TotalTokens: prompt + completion}
}

// answer is a plain answer or a stream chunk (vLLM's field order).
type answer struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices any    `json:"choices"`
	Usage   *usage `json:"usage,omitempty"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     any         `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type chatChunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type textChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type embedding struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float64 `json:"embedding"`
}

func (c call) head() answer {
	if c.ep == chat {
		return answer{ID: "chatcmpl-stub", Object: "chat.completion", Model: c.model}
	}
	return answer{ID: "cmpl-stub", Object: "text_completion", Model: c.model}
}

// plain answers c in one JSON object.
func (s *Stub) plain(w http.ResponseWriter, c call) {
	prompt := c.promptTokens()
	if c.ep == embeddings {
		data := make([]embedding, len(c.prompts))
		for i := range data {
			data[i] = embedding{Object: "embedding", Index: i, Embedding: []float64{0.1, 0.2, 0.3}}
		}
		s.count(prompt, 0, true)
		writeJSON(w, http.StatusOK, struct {
			ID      string      `json:"id"`
			Object  string      `json:"object"`
			Created int64       `json:"created"`
			Model   string      `json:"model"`
			Data    []embedding `json:"data"`
			Usage   usage       `json:"usage"`
		}{"embd-stub", "list", 0, c.model, data, usage{PromptTokens: prompt, TotalTokens: prompt}})
		return
	}
	var completion int64
	a := c.head()
	seqs := c.seqs(s.answerTokens())
	if c.ep == chat {
		choices := make([]chatChoice, len(seqs))
		for i, q := range seqs {
			choices[i] = chatChoice{Index: q.index, Message: chatMessage{Role: "assistant", Content: Answer(q.tokens)}, FinishReason: q.finish}
			completion += int64(q.tokens)
		}
		a.Choices = choices
	} else {
		choices := make([]textChoice, len(seqs))
		for i, q := range seqs {
			choices[i] = textChoice{Index: q.index, Text: Answer(q.tokens), FinishReason: &q.finish}
			completion += int64(q.tokens)
		}
		a.Choices = choices
	}
	a.Usage = newUsage(prompt, completion)
	s.count(prompt, completion, true)
	writeJSON(w, http.StatusOK, a)
}

// streamer writes a stream's events and counts what it flushed.
type streamer struct {
	s         *Stub
	w         http.ResponseWriter
	rc        *http.ResponseController
	ctx       context.Context
	failAfter int // abort after this many events; < 0: never
	sent      int
}

// send writes and flushes one event, then counts its completion tokens;
// false: stop (the client is gone, or the stream was made to fail).
func (st *streamer) send(v any, tokens int) bool {
	if st.ctx.Err() != nil {
		return false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	if _, err := fmt.Fprintf(st.w, "data: %s\n\n", b); err != nil {
		return false
	}
	if err := st.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	st.s.count(0, int64(tokens), false)
	st.sent++
	if st.failAfter >= 0 && st.sent >= st.failAfter {
		abort(st.w)
		return false
	}
	return true
}

// abort closes the connection without ending the response (the client
// sees no terminating chunk). Where hijacking is not supported (an
// httptest.ResponseRecorder) the response just ends early.
func abort(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
	}
}

// pause waits d (none if d ≤ 0); false if the request ended meanwhile.
func pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// split gives the token counts of a choice's content chunks: one per token,
// or at most chunks chunks (earlier ones the larger).
func split(tokens, chunks int) []int {
	if chunks <= 0 || chunks > tokens {
		chunks = tokens
	}
	out := make([]int, chunks)
	for j := range out {
		out[j] = tokens / chunks
		if j < tokens%chunks {
			out[j]++
		}
	}
	return out
}

// stream answers c as server-sent events, in vLLM's order.
func (s *Stub) stream(w http.ResponseWriter, r *http.Request, c call, failAfter int) {
	ctx := r.Context()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	st := &streamer{s: s, w: w, rc: http.NewResponseController(w), ctx: ctx, failAfter: failAfter}
	_ = st.rc.Flush()
	s.count(c.promptTokens(), 0, true)
	if failAfter == 0 {
		abort(w)
		return
	}
	head := c.head()
	if c.ep == chat {
		head.Object = "chat.completion.chunk"
	}
	seqs := c.seqs(s.answerTokens())
	done := make([]int, len(seqs)) // tokens sent per sequence
	chunkUsage := func(i int) *usage {
		if !c.continuousUsage {
			return nil
		}
		// vLLM's continuous usage is the chunk's own: its prompt's tokens
		// and its choice's tokens so far
		return newUsage(seqs[i].prompt, int64(done[i]))
	}
	if c.ep == chat {
		for i, q := range seqs {
			ev := head
			ev.Choices = []chatChunkChoice{{Index: q.index, Delta: delta{Role: "assistant"}}}
			ev.Usage = chunkUsage(i)
			if !st.send(ev, 0) {
				return
			}
		}
	}
	plans := make([][]int, len(seqs))
	for i, q := range seqs {
		plans[i] = split(q.tokens, s.Chunks)
	}
	first := true
	for step := 0; ; step++ {
		more := false
		for i, q := range seqs {
			if step >= len(plans[i]) {
				continue
			}
			more = true
			if !first && !pause(ctx, s.ChunkInterval) {
				return
			}
			k := plans[i][step]
			var text strings.Builder
			for t := done[i]; t < done[i]+k; t++ {
				text.WriteString(word(t))
			}
			done[i] += k
			var finish *string
			if step == len(plans[i])-1 {
				finish = &seqs[i].finish
			}
			ev := head
			if c.ep == chat {
				ev.Choices = []chatChunkChoice{{Index: q.index, Delta: delta{Content: text.String()}, FinishReason: finish}}
			} else {
				ev.Choices = []textChoice{{Index: q.index, Text: text.String(), FinishReason: finish}}
			}
			ev.Usage = chunkUsage(i)
			if !st.send(ev, k) {
				return
			}
			if first {
				first = false
				if c.model == ModelStallStream {
					<-ctx.Done()
					return
				}
				if s.Hold != nil {
					select {
					case <-s.Hold:
					case <-ctx.Done():
						return
					case <-time.After(time.Minute):
					}
				}
			}
		}
		if !more {
			break
		}
	}
	if c.includeUsage {
		var completion int64
		for _, d := range done {
			completion += int64(d)
		}
		ev := head
		ev.Choices = []struct{}{}
		ev.Usage = newUsage(c.promptTokens(), completion)
		if !st.send(ev, 0) {
			return
		}
	}
	if st.failAfter >= 0 {
		abort(w) // fewer events than the failure asked for: fail before [DONE]
		return
	}
	if _, err := fmt.Fprint(w, "data: [DONE]\n\n"); err == nil {
		_ = st.rc.Flush()
	}
}

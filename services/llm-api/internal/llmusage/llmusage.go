// Package llmusage reads the token usage a model server reports — in a
// plain JSON answer, or in a server-sent-events stream — and takes the
// usage the client did not ask for out of the stream.
//
// llm-api asks every stream for usage (stream_options.include_usage and
// vLLM's continuous_usage_stats, llmrequest.Rewrite) so that a stream cut
// short is settled at the last cumulative usage seen. The client gets the
// stream it asked for: without include_usage no usage at all; with it, the
// final usage chunk, and `"usage": null` in the others, as OpenAI sends.
//
// It is not a general SSE library: events are `data:` lines; other
// fields, comments and unparsable data pass through unchanged.
package llmusage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"
)

// Usage is a reported usage; Seen is false when none was reported.
type Usage struct {
	PromptTokens, CompletionTokens int64
	Seen                           bool
	// Partial is set on a stream cut short before its final usage when
	// some of its prompts never reported (a batch): PromptTokens covers
	// only the prompts that did.
	Partial bool
}

// Total is prompt + completion tokens.
func (u Usage) Total() int64 { return u.PromptTokens + u.CompletionTokens }

// usageField reads obj's "usage" object ({prompt_tokens, completion_tokens}).
func usageField(obj map[string]json.RawMessage) (Usage, bool) {
	raw, ok := obj["usage"]
	if !ok {
		return Usage{}, false
	}
	var u struct {
		Prompt     *int64 `json:"prompt_tokens"`
		Completion *int64 `json:"completion_tokens"`
	}
	if json.Unmarshal(raw, &u) != nil || u.Prompt == nil || *u.Prompt < 0 || (u.Completion != nil && *u.Completion < 0) {
		return Usage{}, false
	}
	out := Usage{PromptTokens: *u.Prompt, Seen: true}
	if u.Completion != nil {
		out.CompletionTokens = *u.Completion
	}
	return out, true
}

// FromJSON reads the usage of a plain (non-streamed) answer.
func FromJSON(body []byte) Usage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return Usage{}
	}
	u, _ := usageField(obj)
	return u
}

// MaxEventBytes bounds one event's data; a longer event passes through
// unparsed.
const MaxEventBytes = 4 << 20

// Stream reads a model server's event stream, records the latest usage
// and yields the stream for the client. Usage and Done are safe to call
// from another goroutine while it is read.
type Stream struct {
	src          *bufio.Reader
	closer       io.Closer
	includeUsage bool

	out     bytes.Buffer // rewritten bytes not yet read
	pending []byte       // the current event's lines
	err     error

	// n and prompts: the request's choices per prompt and prompts (a
	// choice's index is prompt × n + choice, as vLLM numbers them)
	n, prompts int

	mu      sync.Mutex
	final   Usage               // the final usage chunk's (the request's total)
	choices map[int64]choiceUse // per choice index, its latest running usage
	done    bool
}

// choiceUse is one choice's latest running usage: vLLM's
// continuous_usage_stats report each choice's own prompt and completion
// tokens in its chunks, not the request's total.
type choiceUse struct{ prompt, completion int64 }

var _ io.ReadCloser = (*Stream)(nil)

// NewStream wraps body; includeUsage is whether the client asked for it;
// n and prompts are the request's choices per prompt and prompts (1, 1
// for a chat completion with one choice).
func NewStream(body io.ReadCloser, includeUsage bool, n, prompts int) *Stream {
	return &Stream{src: bufio.NewReaderSize(body, 64<<10), closer: body, includeUsage: includeUsage,
		n: max(n, 1), prompts: max(prompts, 1), choices: map[int64]choiceUse{}}
}

// Usage is the request's usage: the final usage chunk's when the stream
// sent it; else the sum of every choice's latest running usage (each
// prompt counted once), Partial when a prompt of a batch never reported.
func (s *Stream) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final.Seen {
		return s.final
	}
	if len(s.choices) == 0 {
		return Usage{}
	}
	u := Usage{Seen: true}
	prompt := map[int64]int64{}
	for i, c := range s.choices {
		u.CompletionTokens += c.completion
		p := i / int64(s.n)
		prompt[p] = max(prompt[p], c.prompt)
	}
	for _, p := range prompt {
		u.PromptTokens += p
	}
	u.Partial = len(prompt) < s.prompts
	return u
}

// Done reports whether the stream ended with its `[DONE]` event.
func (s *Stream) Done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// Close closes the upstream body.
func (s *Stream) Close() error { return s.closer.Close() }

// Read returns the client's stream, an event at a time (so each is
// flushed as soon as the model server wrote it).
func (s *Stream) Read(p []byte) (int, error) {
	for s.out.Len() == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.fill()
	}
	return s.out.Read(p)
}

// fill reads lines up to the end of one event (a blank line) or an error.
func (s *Stream) fill() {
	for {
		line, err := s.src.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// a very long line: keep collecting it
			s.pending = append(s.pending, line...)
			if len(s.pending) > MaxEventBytes {
				s.out.Write(s.pending)
				s.pending = s.pending[:0]
			}
			continue
		}
		s.pending = append(s.pending, line...)
		if err != nil {
			s.flushEvent()
			s.err = err
			return
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			s.flushEvent()
			return
		}
	}
}

// flushEvent rewrites the pending event into out.
func (s *Stream) flushEvent() {
	ev := s.pending
	s.pending = s.pending[:0]
	if len(ev) == 0 {
		return
	}
	if len(ev) > MaxEventBytes {
		s.out.Write(ev)
		return
	}
	var data []byte
	var rest [][]byte // the event's non-data lines, as they came
	multi := false
	for _, l := range bytes.SplitAfter(ev, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		t := bytes.TrimRight(l, "\r\n")
		if v, ok := bytes.CutPrefix(t, []byte("data:")); ok {
			if data != nil {
				multi = true
			}
			data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
			continue
		}
		rest = append(rest, l)
	}
	if data == nil || multi {
		s.out.Write(ev)
		return
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
		s.out.Write(ev)
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil || obj == nil {
		s.out.Write(ev)
		return
	}
	u, has := usageField(obj)
	final := isFinal(obj)
	if has {
		s.mu.Lock()
		if final {
			s.final = u
		} else if idx, ok := choiceIndex(obj); ok {
			c := s.choices[idx]
			// running totals only grow; a chunk out of order never lowers them
			s.choices[idx] = choiceUse{prompt: max(c.prompt, u.PromptTokens), completion: max(c.completion, u.CompletionTokens)}
		}
		s.mu.Unlock()
	}
	if _, present := obj["usage"]; !present {
		s.out.Write(ev)
		return
	}
	switch {
	case final && s.includeUsage:
		s.out.Write(ev) // the usage chunk the client asked for
		return
	case final:
		return // the client did not ask: drop the usage-only chunk
	case s.includeUsage:
		obj["usage"] = json.RawMessage("null")
	default:
		delete(obj, "usage")
	}
	var enc bytes.Buffer
	e := json.NewEncoder(&enc)
	e.SetEscapeHTML(false) // the model's text as it wrote it (no \u003c)
	if e.Encode(obj) != nil {
		s.out.Write(ev)
		return
	}
	b := bytes.TrimRight(enc.Bytes(), "\n")
	for _, l := range rest {
		if len(bytes.TrimRight(l, "\r\n")) > 0 {
			s.out.Write(l)
		}
	}
	s.out.WriteString("data: ")
	s.out.Write(b)
	s.out.WriteString("\n\n")
}

// maxChoices bounds the choice indexes a stream may report (n × prompts
// is far below it); larger indexes are ignored.
const maxChoices = 1 << 16

// choiceIndex is the index of the chunk's (first) choice.
func choiceIndex(obj map[string]json.RawMessage) (int64, bool) {
	var list []struct {
		Index *int64 `json:"index"`
	}
	if json.Unmarshal(obj["choices"], &list) != nil || len(list) == 0 || list[0].Index == nil ||
		*list[0].Index < 0 || *list[0].Index >= maxChoices {
		return 0, false
	}
	return *list[0].Index, true
}

// isFinal reports a usage-only chunk: choices empty (OpenAI and vLLM send
// "choices": [] with the usage at the end).
func isFinal(obj map[string]json.RawMessage) bool {
	c, ok := obj["choices"]
	if !ok {
		return true
	}
	var list []json.RawMessage
	return json.Unmarshal(c, &list) == nil && len(list) == 0
}

package llmstub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// The stub's token rule (no tokenizer; see the package comment).
const (
	// BytesPerToken: a text is ceil(bytes / BytesPerToken) tokens.
	BytesPerToken = 4
	// MessageTokens is the chat template's overhead per message.
	MessageTokens = 4
	// PromptTokens is the overhead per completions prompt and per
	// embeddings input (BOS/EOS).
	PromptTokens = 2
	// DefaultAnswerTokens is the natural length of a choice when
	// Stub.AnswerTokens is not set.
	DefaultAnswerTokens = 64
	// MaxN is the most choices per prompt a request may ask for.
	MaxN = 128
	// MaxSequences bounds choices × prompts of one request (the stub keeps
	// every answer in memory).
	MaxSequences = 4096
)

// TextTokens is the stub's token count of a text: ceil(bytes/4), so at
// least 1 for any text that is not empty.
func TextTokens(s string) int64 {
	return (int64(len(s)) + BytesPerToken - 1) / BytesPerToken
}

type endpoint int

const (
	chat endpoint = iota + 1
	completions
	embeddings
)

// call is what the stub reads of a model request.
type call struct {
	ep     endpoint
	model  string
	stream bool
	// includeUsage: a final usage chunk; continuousUsage: usage in every
	// chunk too (vLLM honours continuous_usage_stats only with
	// include_usage).
	includeUsage, continuousUsage bool
	n                             int     // choices per prompt
	cap                           int     // completion cap; 0: none
	prompts                       []int64 // the prompt tokens of each prompt (chat: one)
}

// promptTokens is the prompt tokens of the whole request.
func (c call) promptTokens() int64 {
	var t int64
	for _, p := range c.prompts {
		t += p
	}
	return t
}

// badRequest is a refused request: 400 with param and message.
type badRequest struct{ param, msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(param, format string, args ...any) error {
	return &badRequest{param: param, msg: fmt.Sprintf(format, args...)}
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// intParam reads an optional integer in [min, 2^31) (absent or null: def);
// 100.0 is 100, as to the model server.
func intParam(top map[string]json.RawMessage, name string, def, min int64) (int64, error) {
	raw, ok := top[name]
	if !ok || isNull(raw) {
		return def, nil
	}
	var f json.Number
	if t := bytes.TrimSpace(raw); t[0] == '"' || json.Unmarshal(t, &f) != nil {
		return 0, bad(name, "%s must be an integer", name)
	}
	v, err := strconv.ParseInt(f.String(), 10, 64)
	if err != nil {
		x, ferr := strconv.ParseFloat(f.String(), 64)
		if ferr == nil && x == math.Trunc(x) && x >= math.MinInt32 && x <= math.MaxInt32 {
			v, err = int64(x), nil
		}
	}
	if err != nil || v < min || v > math.MaxInt32 {
		return 0, bad(name, "%s must be an integer between %d and 2^31-1", name, min)
	}
	return v, nil
}

func boolParam(m map[string]json.RawMessage, name string) (bool, error) {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return false, bad(name, "%s must be a boolean", name)
	}
	return b, nil
}

// parseCall reads a request body's object for ep. Keys match exactly, as
// vLLM's do. It is lenient where the repository's tests send bare bodies
// (a chat without messages is a prompt of 0 tokens) and strict on types.
func parseCall(ep endpoint, top map[string]json.RawMessage) (call, error) {
	c := call{ep: ep, n: 1}
	if raw, ok := top["model"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &c.model) != nil {
			return call{}, bad("model", "model must be a string")
		}
	}
	var err error
	if ep == embeddings {
		c.prompts, err = promptList(top, "input")
		return c, err
	}
	n, err := intParam(top, "n", 1, 1)
	if err != nil {
		return call{}, err
	}
	if n > MaxN {
		return call{}, bad("n", "n must be at most %d", MaxN)
	}
	c.n = int(n)
	// best_of is accepted and ignored: the answer has n choices.
	if _, err := intParam(top, "best_of", 0, 0); err != nil {
		return call{}, err
	}
	if c.stream, err = boolParam(top, "stream"); err != nil {
		return call{}, err
	}
	if raw, ok := top["stream_options"]; ok && !isNull(raw) {
		var so map[string]json.RawMessage
		if json.Unmarshal(raw, &so) != nil || so == nil {
			return call{}, bad("stream_options", "stream_options must be an object")
		}
		if c.includeUsage, err = boolParam(so, "include_usage"); err != nil {
			return call{}, err
		}
		cont, err := boolParam(so, "continuous_usage_stats")
		if err != nil {
			return call{}, err
		}
		c.continuousUsage = c.includeUsage && cont
	}
	// the cap: chat's max_completion_tokens, else max_tokens; at least 1
	fields := []string{"max_tokens"}
	if ep == chat {
		fields = []string{"max_completion_tokens", "max_tokens"}
	}
	for _, f := range fields {
		v, err := intParam(top, f, 0, 1)
		if err != nil {
			return call{}, err
		}
		if c.cap == 0 {
			c.cap = int(v)
		}
	}
	if ep == chat {
		p, err := chatPrompt(top["messages"])
		if err != nil {
			return call{}, err
		}
		c.prompts = []int64{p}
	} else if c.prompts, err = promptList(top, "prompt"); err != nil {
		return call{}, err
	}
	if len(c.prompts)*c.n > MaxSequences {
		return call{}, bad("n", "at most %d sequences (choices × prompts) per request", MaxSequences)
	}
	return c, nil
}

// chatPrompt counts a chat prompt: MessageTokens per message plus the
// tokens of its text (string content, "text" parts). Other parts, names,
// tool calls and tools count nothing.
func chatPrompt(raw json.RawMessage) (int64, error) {
	if isNull(raw) {
		return 0, nil
	}
	var msgs []json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return 0, bad("messages", "messages must be an array of message objects")
	}
	var total int64
	for i, mraw := range msgs {
		var m map[string]json.RawMessage
		if json.Unmarshal(mraw, &m) != nil || m == nil {
			return 0, bad(fmt.Sprintf("messages[%d]", i), "a message must be an object")
		}
		total += MessageTokens
		content := m["content"]
		if isNull(content) {
			continue
		}
		param := fmt.Sprintf("messages[%d].content", i)
		switch bytes.TrimSpace(content)[0] {
		case '"':
			var s string
			if json.Unmarshal(content, &s) != nil {
				return 0, bad(param, "content must be a string or an array of parts")
			}
			total += TextTokens(s)
		case '[':
			var parts []map[string]json.RawMessage
			if json.Unmarshal(content, &parts) != nil {
				return 0, bad(param, "content must be a string or an array of parts")
			}
			for j, part := range parts {
				var typ string
				if part == nil || json.Unmarshal(part["type"], &typ) != nil {
					return 0, bad(fmt.Sprintf("%s[%d]", param, j), "a content part must be an object with a type")
				}
				if typ != "text" {
					continue
				}
				var s string
				if json.Unmarshal(part["text"], &s) != nil {
					return 0, bad(fmt.Sprintf("%s[%d].text", param, j), "a text part needs a text")
				}
				total += TextTokens(s)
			}
		default:
			return 0, bad(param, "content must be a string or an array of parts")
		}
	}
	return total, nil
}

// promptList reads a completions prompt or an embeddings input: a string,
// token ids, or a list of strings and token-id lists (a batch); returns the
// tokens of each prompt (its text's or its ids' count, + PromptTokens).
func promptList(top map[string]json.RawMessage, name string) ([]int64, error) {
	raw := bytes.TrimSpace(top[name])
	if isNull(raw) {
		return nil, bad(name, "%s is required", name)
	}
	one := func(r json.RawMessage) (int64, bool) {
		r = bytes.TrimSpace(r)
		if len(r) == 0 {
			return 0, false
		}
		switch r[0] {
		case '"':
			var s string
			if json.Unmarshal(r, &s) != nil {
				return 0, false
			}
			return TextTokens(s) + PromptTokens, true
		case '[':
			var ids []int64
			if json.Unmarshal(r, &ids) != nil {
				return 0, false
			}
			return int64(len(ids)) + PromptTokens, true
		}
		return 0, false
	}
	invalid := bad(name, "%s must be a string, token ids, or a non-empty list of strings or token-id lists", name)
	if raw[0] != '[' {
		p, ok := one(raw)
		if !ok {
			return nil, invalid
		}
		return []int64{p}, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return nil, invalid
	}
	if first := bytes.TrimSpace(list[0]); first[0] != '"' && first[0] != '[' {
		p, ok := one(raw) // token ids: one prompt
		if !ok {
			return nil, invalid
		}
		return []int64{p}, nil
	}
	if len(list) > MaxSequences {
		return nil, bad(name, "at most %d prompts per request", MaxSequences)
	}
	out := make([]int64, 0, len(list))
	for _, item := range list {
		p, ok := one(item)
		if !ok {
			return nil, invalid
		}
		out = append(out, p)
	}
	return out, nil
}

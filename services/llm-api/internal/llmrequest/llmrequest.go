// Package llmrequest reads what a budget needs from an OpenAI-compatible
// request body — the model, an upper bound of its prompt tokens, the
// number of sequences it asks for and its completion cap — and rewrites
// the body so that the upstream cannot generate more than was reserved.
//
// The prompt bound needs no tokenizer. It rests on one fact: every token
// of a byte-level BPE tokenizer (GPT-2, Llama 3, Qwen, Mistral Tekken) and
// of a SentencePiece tokenizer with byte fallback and no expanding
// normalization (Llama 2, Mistral v1–v3) stands for at least one byte of
// the text it encodes, so a text has at most as many tokens as UTF-8 bytes.
// vLLM renders a chat request through the model's chat template: the
// template's own text (role markers, BOS, a default system prompt, a tool
// preamble) is covered by Options.TemplateTokens and
// TemplateTokensPerMessage; message text appears once, at most as many
// bytes as in the JSON body (an escape is never shorter than what it
// stands for); every other rendered value (tools, tool calls, names,
// response_format, documents) appears as JSON, which templates' tojson
// re-serializes with ", " and ": " separators — at most twice its bytes in
// the body. So the bound is 2 × the body's bytes, minus the message texts
// counted once and the image parts (each charged Options.ImageTokens
// instead; refused when that is 0), plus the template's overhead. For a
// tokenizer with an expanding normalization (NFKC) set Options.Factor.
//
// It does not validate the request beyond what the bound needs: the
// model server answers everything else.
package llmrequest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
)

// Endpoint is one of the proxied model endpoints.
type Endpoint int

// The endpoints.
const (
	Chat Endpoint = iota + 1
	Completions
	Embeddings
)

// Defaults of Options.
const (
	DefaultTemplateTokens           = 256
	DefaultTemplateTokensPerMessage = 16
	// PromptOverhead is added per prompt of /v1/completions and per input
	// of /v1/embeddings (BOS/EOS and the like).
	PromptOverhead = 8
	// MaxN is the most choices a request may ask for (OpenAI's bound).
	MaxN = 128
)

// Options describe a model's chat template and images.
type Options struct {
	TemplateTokens, TemplateTokensPerMessage int64
	// ImageTokens is what one image part is reserved and charged as; 0:
	// image parts are refused.
	ImageTokens int64
	// Factor multiplies the text bound (default 1).
	Factor int64
}

// Plan is what a request asks for.
type Plan struct {
	Model string
	// PromptTokens is the upper bound of the prompt tokens (all prompts
	// of a batch).
	PromptTokens int64
	// N is the number of sequences generated (choices × prompts);
	// Choices the sequences per prompt (n, or best_of when larger) and
	// Prompts the prompts (a batch of /v1/completions; 1 otherwise).
	N, Choices, Prompts int64
	// Cap is the client's completion cap (max_completion_tokens, else
	// max_tokens); 0: none.
	Cap int64
	// Stream is true for a server-sent-events answer; IncludeUsage when
	// the client itself asked for usage in it.
	Stream, IncludeUsage bool

	// src is the request Analyze read, kept for Rewrite (the body is
	// decoded once).
	src *source
}

type source struct {
	ep   Endpoint
	body []byte
	top  map[string]json.RawMessage
}

// Error is a refusal with a stable code and the parameter at fault.
type Error struct {
	Code, Param, Message string
}

func (e *Error) Error() string { return e.Message }

// Codes of Error.
const (
	CodeInvalidRequest   = "invalid_request_body"
	CodeImagesNotAllowed = "images_not_allowed"
	CodeUnsupportedPart  = "unsupported_content_part"
)

func bad(param, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// Analyze reads body (one JSON object, checked by the caller) for ep;
// options gives the model's options. Keys are matched exactly, as the
// model server matches them.
func Analyze(ep Endpoint, body []byte, options func(model string) Options) (Plan, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return Plan{}, bad("", "the request body must be a JSON object")
	}
	var p Plan
	if err := json.Unmarshal(top["model"], &p.Model); err != nil || p.Model == "" {
		return Plan{}, bad("model", "model is required")
	}
	o := options(p.Model)
	if o.Factor < 1 {
		o.Factor = 1
	}
	n, err := intParam(top, "n", 1)
	if err != nil {
		return Plan{}, err
	}
	if n < 1 || n > MaxN {
		return Plan{}, bad("n", "n must be between 1 and %d", MaxN)
	}
	if ep != Embeddings {
		if bo, err := intParam(top, "best_of", 0); err != nil {
			return Plan{}, err
		} else if bo > n {
			if bo > MaxN {
				return Plan{}, bad("best_of", "best_of must be at most %d", MaxN)
			}
			n = bo // the server generates best_of sequences
		}
		if p.Stream, err = boolParam(top, "stream"); err != nil {
			return Plan{}, err
		}
		if raw, ok := top["stream_options"]; ok && !isNull(raw) {
			var so map[string]json.RawMessage
			if json.Unmarshal(raw, &so) != nil {
				return Plan{}, bad("stream_options", "stream_options must be an object")
			}
			if p.IncludeUsage, err = boolParam(so, "include_usage"); err != nil {
				return Plan{}, err
			}
		}
		// the client's cap: chat's max_completion_tokens, else its
		// deprecated max_tokens; completions' max_tokens. A cap that is set
		// must be at least 1.
		fields := []string{"max_tokens"}
		if ep == Chat {
			fields = []string{"max_completion_tokens", "max_tokens"}
		}
		var c int64
		for _, f := range fields {
			v, err := intParam(top, f, 0)
			if err != nil {
				return Plan{}, err
			}
			if raw, set := top[f]; set && !isNull(raw) && v < 1 {
				return Plan{}, bad(f, "%s must be at least 1", f)
			}
			if c == 0 {
				c = v
			}
		}
		p.Cap = c
	}
	var bound, prompts int64
	switch ep {
	case Chat:
		bound, err = chatBound(body, top, o)
	case Completions:
		bound, prompts, err = promptsBound(top, "prompt", o)
		n *= prompts
		if s, ok := top["suffix"]; ok && err == nil {
			bound = add(bound, mul(int64(len(s)), o.Factor))
		}
	case Embeddings:
		bound, _, err = promptsBound(top, "input", o)
		n = 1
	default:
		return Plan{}, bad("", "unknown endpoint")
	}
	if err != nil {
		return Plan{}, err
	}
	p.PromptTokens, p.N = bound, n
	p.src = &source{ep: ep, body: body, top: top}
	p.Choices, p.Prompts = n, 1
	if ep == Completions && prompts > 0 {
		p.Choices, p.Prompts = n/prompts, prompts
	}
	if ep == Embeddings {
		p.Choices = 1
	}
	return p, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// intParam reads an optional integer (absent or null: def).
func intParam(m map[string]json.RawMessage, name string, def int64) (int64, error) {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return def, nil
	}
	var f json.Number
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] == '"' || json.Unmarshal(t, &f) != nil {
		return 0, bad(name, "%s must be an integer", name)
	}
	v, err := strconv.ParseInt(f.String(), 10, 64)
	if err != nil {
		// 100.0 is an integer to the model server too
		x, ferr := strconv.ParseFloat(f.String(), 64)
		if ferr == nil && x == math.Trunc(x) && x >= 0 && x <= math.MaxInt32 {
			v, err = int64(x), nil
		}
	}
	if err != nil || v < 0 || v > math.MaxInt32 {
		return 0, bad(name, "%s must be a non-negative integer below 2^31", name)
	}
	return v, nil
}

func boolParam(m map[string]json.RawMessage, name string) (bool, error) {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, bad(name, "%s must be a boolean", name)
	}
	return b, nil
}

func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func mul(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

// chatBound: 2 × body − message texts once − image parts, + template.
func chatBound(body []byte, top map[string]json.RawMessage, o Options) (int64, error) {
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(top["messages"], &msgs); err != nil || len(msgs) == 0 {
		return 0, bad("messages", "messages must be a non-empty array of objects")
	}
	bound := mul(2*int64(len(body)), o.Factor)
	bound = add(bound, o.TemplateTokens)
	bound = add(bound, mul(int64(len(msgs)), o.TemplateTokensPerMessage))
	for i, m := range msgs {
		if m == nil {
			return 0, bad(fmt.Sprintf("messages[%d]", i), "a message must be an object")
		}
		c, ok := m["content"]
		if !ok || isNull(c) {
			continue
		}
		switch bytes.TrimSpace(c)[0] {
		case '"':
			bound -= mul(int64(len(c)), o.Factor) // once, not twice
		case '[':
			var parts []json.RawMessage
			if err := json.Unmarshal(c, &parts); err != nil {
				return 0, bad(fmt.Sprintf("messages[%d].content", i), "content must be a string or an array of parts")
			}
			for j, raw := range parts {
				var part map[string]json.RawMessage
				var typ string
				if json.Unmarshal(raw, &part) != nil || part == nil || json.Unmarshal(part["type"], &typ) != nil {
					return 0, bad(fmt.Sprintf("messages[%d].content[%d]", i, j), "a content part must be an object with a type")
				}
				switch typ {
				case "text":
					if t, ok := part["text"]; ok {
						bound -= mul(int64(len(t)), o.Factor)
					}
				case "image_url":
					if o.ImageTokens == 0 {
						return 0, &Error{Code: CodeImagesNotAllowed, Param: fmt.Sprintf("messages[%d].content[%d]", i, j),
							Message: "this model takes no images (no per-image cost is configured)"}
					}
					// the part's own bytes, counted twice in the body
					bound -= mul(2*int64(len(raw)), o.Factor)
					bound = add(bound, o.ImageTokens)
				default:
					return 0, &Error{Code: CodeUnsupportedPart, Param: fmt.Sprintf("messages[%d].content[%d]", i, j),
						Message: "only text and image_url content parts are accepted"}
				}
			}
		default:
			return 0, bad(fmt.Sprintf("messages[%d].content", i), "content must be a string or an array of parts")
		}
	}
	if bound < 0 {
		bound = 0
	}
	return bound, nil
}

// promptsBound reads a prompt (or input): a string, strings, token ids,
// or arrays of token ids; returns the bound and the number of prompts.
func promptsBound(top map[string]json.RawMessage, name string, o Options) (int64, int64, error) {
	raw, ok := top[name]
	if !ok || isNull(raw) {
		return 0, 0, bad(name, "%s is required", name)
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
			return add(mul(int64(len(s)), o.Factor), PromptOverhead), true
		case '[':
			var ids []int64
			if json.Unmarshal(r, &ids) != nil {
				return 0, false
			}
			return add(int64(len(ids)), PromptOverhead), true
		}
		return 0, false
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(trimmed, &list) != nil || len(list) == 0 {
			return 0, 0, bad(name, "%s must be a string, an array of strings or of token ids", name)
		}
		if first := bytes.TrimSpace(list[0]); len(first) > 0 && first[0] != '"' && first[0] != '[' {
			// token ids: one prompt
			b, ok := one(trimmed)
			if !ok {
				return 0, 0, bad(name, "%s must be a string, an array of strings or of token ids", name)
			}
			return b, 1, nil
		}
		var total int64
		for _, item := range list {
			b, ok := one(item)
			if !ok {
				return 0, 0, bad(name, "%s must be a string, an array of strings or of token ids", name)
			}
			total = add(total, b)
		}
		return total, int64(len(list)), nil
	}
	b, ok := one(trimmed)
	if !ok {
		return 0, 0, bad(name, "%s must be a string, an array of strings or of token ids", name)
	}
	return b, 1, nil
}

// ErrRewrite is Rewrite's answer for a Plan that Analyze did not make.
var ErrRewrite = errors.New("llmrequest: cannot rewrite the body")

// Rewrite returns the analyzed body with exactly one completion cap —
// chat: max_completion_tokens = limit (max_tokens dropped: vLLM lets the
// former win and the latter is deprecated); completions: max_tokens =
// limit — and, for a stream, usage asked of the upstream in the last chunk
// (stream_options.include_usage) and in every chunk (vLLM's
// continuous_usage_stats), so an aborted stream is settled at the last
// usage seen. Embeddings are returned unchanged. It reuses what Analyze
// decoded.
func (p Plan) Rewrite(limit int64) ([]byte, error) {
	if p.src == nil {
		return nil, ErrRewrite
	}
	if p.src.ep == Embeddings {
		return p.src.body, nil
	}
	top := maps.Clone(p.src.top)
	c := json.RawMessage(strconv.FormatInt(limit, 10))
	if p.src.ep == Chat {
		delete(top, "max_tokens")
		top["max_completion_tokens"] = c
	} else {
		top["max_tokens"] = c
	}
	if p.Stream {
		so := map[string]json.RawMessage{}
		if raw, ok := top["stream_options"]; ok && !isNull(raw) {
			if json.Unmarshal(raw, &so) != nil {
				return nil, ErrRewrite
			}
		}
		so["include_usage"] = json.RawMessage("true")
		so["continuous_usage_stats"] = json.RawMessage("true")
		b, _ := json.Marshal(so)
		top["stream_options"] = b
	}
	return json.Marshal(top)
}

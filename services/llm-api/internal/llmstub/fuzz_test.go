package llmstub

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmrequest"
)

// FuzzStubRequest: any body on any model endpoint is a well-formed JSON
// answer (or event stream) whose usage adds up and matches what the stub
// counted, or a JSON error — 4xx, or the 5xx a fail-<status> model asks
// for — never a panic; the prompt tokens never exceed llmrequest's bound
// and the completion never the cap it read.
func FuzzStubRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"why"},{"type":"image_url","image_url":{"url":"data:"}}]}],"n":3,"max_tokens":4}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1,"max_tokens":100000,"MAX_TOKENS":2}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"n":2,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"max_completion_tokens":3}`,
		`{"model":"fail-mid-stream","messages":[],"stream":true}`,
		`{"model":"fail-mid-stream","prompt":"x"}`,
		`{"model":"fail-503"}`,
		`{"model":"m","prompt":[[1,2],[3,4,5]],"best_of":3,"n":2,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","prompt":["\u0000","\ud800"],"max_tokens":1e2}`,
		`{"model":"m","prompt":"` + strings.Repeat("é", 40) + `","echo":true,"logprobs":2}`,
		`{"model":"e","input":[1,[2]]}`,
		`{"model":"e","input":[[1],[2]],"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"n":1e9}`,
		`[]`, `null`, `{}`, `{"model":null}`, `"x"`, `{`,
	} {
		for e := range 3 {
			f.Add(e, []byte(s))
		}
	}
	opts := func(string) llmrequest.Options {
		return llmrequest.Options{TemplateTokens: llmrequest.DefaultTemplateTokens, TemplateTokensPerMessage: llmrequest.DefaultTemplateTokensPerMessage}
	}
	eps := []endpoint{chat, completions, embeddings}
	reqEps := map[endpoint]llmrequest.Endpoint{chat: llmrequest.Chat, completions: llmrequest.Completions, embeddings: llmrequest.Embeddings}
	f.Fuzz(func(t *testing.T, e int, body []byte) {
		ep := eps[(e%3+3)%3]
		var top map[string]json.RawMessage
		var model string
		if json.Unmarshal(body, &top) == nil {
			_ = json.Unmarshal(top["model"], &model)
		}
		if model == "stall" || model == ModelStallStream {
			return // they wait for the client, by design
		}
		s := &Stub{AnswerTokens: 8}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, paths[ep], bytes.NewReader(body))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if ctx.Err() != nil {
			t.Fatal("the stub did not answer")
		}
		prompt, completion := s.Produced()
		if w.Code != 200 {
			var er struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
				} `json:"error"`
			}
			failMode := strings.HasPrefix(model, "fail-")
			if (w.Code < 400 || w.Code > 499) && !(failMode && w.Code <= 599) {
				t.Fatalf("status %d", w.Code)
			}
			if json.Unmarshal(w.Body.Bytes(), &er) != nil || er.Error.Message == "" || er.Error.Type == "" {
				t.Fatalf("error body %q", w.Body)
			}
			if prompt != 0 || completion != 0 {
				t.Fatalf("a refusal produced %d/%d", prompt, completion)
			}
			return
		}
		var answered []testAnswer
		var reported *testUsage
		switch ct := w.Header().Get("Content-Type"); {
		case ct == "application/json":
			var a testAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Usage == nil {
				t.Fatalf("%v: %s", err, w.Body)
			}
			answered, reported = []testAnswer{a}, a.Usage
		case ct == "text/event-stream":
			evs, _, done := events(t, w.Body.Bytes())
			if !done && model != ModelFailMidStream {
				t.Fatalf("no [DONE]: %q", w.Body)
			}
			answered = evs
			if n := len(evs); n > 0 && len(evs[n-1].Choices) == 0 {
				reported = evs[n-1].Usage
			}
		case model == ModelFailMidStream && w.Body.Len() == 0:
			return // a plain answer made to fail: the connection closed
		default:
			t.Fatalf("content type %q: %q", ct, w.Body)
		}
		// what was sent adds up to what the stub counted
		var words int64
		for _, a := range answered {
			for _, c := range a.Choices {
				switch {
				case c.Text != nil:
					words += int64(strings.Count(*c.Text, "tok"))
				case c.Delta != nil && c.Delta.Content != nil:
					words += int64(strings.Count(*c.Delta.Content, "tok"))
				default:
					words += int64(strings.Count(c.Message.Content, "tok"))
				}
			}
		}
		if words != completion {
			t.Fatalf("sent %d tokens, counted %d", words, completion)
		}
		if reported != nil {
			c := int64(0)
			if reported.Completion != nil {
				c = *reported.Completion
			}
			if reported.Prompt != prompt || c != completion || reported.Total != prompt+c {
				t.Fatalf("reported %+v, counted %d/%d", reported, prompt, completion)
			}
		}
		if plan, err := llmrequest.Analyze(reqEps[ep], body, opts); err == nil {
			if prompt > plan.PromptTokens {
				t.Fatalf("%d prompt tokens above the bound %d", prompt, plan.PromptTokens)
			}
			if plan.Cap > 0 && completion > plan.Cap*plan.N {
				t.Fatalf("%d completion tokens above the cap %d × %d", completion, plan.Cap, plan.N)
			}
		}
	})
}

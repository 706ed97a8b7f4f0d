package llmrequest

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzAnalyze: any body is a Plan or an *Error, never a panic; an
// accepted chat or completions body rewrites to one the same analysis
// reads as the same request (model, sequences, stream) asking for exactly
// the reserved cap, in one cap field for chat.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"max_completion_tokens":9,"n":2}`,
		// attacks: duplicate and cased keys, caps as strings, huge n, nested images
		`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1,"max_tokens":100000}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"MAX_TOKENS":100000,"Max_Completion_Tokens":5}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"100000"}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"n":1e9}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x"}}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":false}}`,
		`{"model":"m","prompt":[[1,2],[3,4,5]],"best_of":3,"n":2}`,
		`{"model":"m","prompt":["\u0000","\ud800"]}`,
		`{"model":"m","input":[1,[2]]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":-0}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":1e2}`,
		`[]`, `null`, `{"model":null}`, `{}`,
	} {
		for _, ep := range []Endpoint{Chat, Completions, Embeddings} {
			f.Add(int(ep), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, e int, body []byte) {
		ep := Endpoint(1 + (e%3+3)%3)
		p, err := Analyze(ep, body, opts(100))
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || re.Code == "" {
				t.Fatalf("an error without a code: %v", err)
			}
			return
		}
		if p.Model == "" || p.N < 1 || p.PromptTokens < 0 || p.Cap < 0 {
			t.Fatalf("accepted %+v", p)
		}
		if ep == Embeddings {
			return
		}
		out, err := p.Rewrite(3)
		if err != nil {
			t.Fatalf("rewrite of an accepted body: %v", err)
		}
		q, err := Analyze(ep, out, opts(100))
		if err != nil {
			t.Fatalf("the rewritten body is refused: %v", err)
		}
		if q.Model != p.Model || q.N != p.N || q.Cap != 3 || q.Stream != p.Stream {
			t.Fatalf("rewritten %+v from %+v", q, p)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(out, &m) != nil {
			t.Fatal("not an object")
		}
		if _, both := m["max_tokens"]; ep == Chat && both {
			t.Fatal("two cap fields go upstream")
		}
	})
}

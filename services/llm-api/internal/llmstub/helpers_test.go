package llmstub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var paths = map[endpoint]string{chat: "/v1/chat/completions", completions: "/v1/completions", embeddings: "/v1/embeddings"}

// post serves one POST in process.
func post(s *Stub, ep endpoint, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, paths[ep], strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

type testUsage struct {
	Prompt     int64  `json:"prompt_tokens"`
	Completion *int64 `json:"completion_tokens"`
	Total      int64  `json:"total_tokens"`
}

type testChoice struct {
	Index   int `json:"index"`
	Message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"message"`
	Text  *string `json:"text"`
	Delta *struct {
		Role    *string `json:"role"`
		Content *string `json:"content"`
	} `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type testAnswer struct {
	Object  string       `json:"object"`
	Choices []testChoice `json:"choices"`
	Data    []struct {
		Index int `json:"index"`
	} `json:"data"`
	Usage *testUsage `json:"usage"`
}

// events splits a stream into its events' data; done: it ended with
// data: [DONE] (nothing after).
func events(t testing.TB, body []byte) (evs []testAnswer, raw []string, done bool) {
	t.Helper()
	for _, block := range strings.Split(string(body), "\n\n") {
		if block == "" {
			continue
		}
		if done {
			t.Fatalf("an event after [DONE]: %q", block)
		}
		data, ok := strings.CutPrefix(block, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("not one data line: %q", block)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var a testAnswer
		if err := json.Unmarshal([]byte(data), &a); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		evs, raw = append(evs, a), append(raw, data)
	}
	if len(body) > 0 && !bytes.HasSuffix(body, []byte("\n\n")) {
		t.Fatalf("a stream cut inside an event: %q", body)
	}
	return evs, raw, done
}

// render writes an event compactly: `0 role`, `1 " tok1" stop`, ` @p/c`
// for its usage, `usage p/c` for the final chunk.
func render(a testAnswer) string {
	if len(a.Choices) == 0 {
		if a.Usage == nil || a.Usage.Completion == nil {
			return "no choices, no usage"
		}
		return fmt.Sprintf("usage %d/%d", a.Usage.Prompt, *a.Usage.Completion)
	}
	var b strings.Builder
	for _, c := range a.Choices {
		fmt.Fprintf(&b, "%d", c.Index)
		switch {
		case c.Delta != nil && c.Delta.Role != nil:
			fmt.Fprintf(&b, " %s", *c.Delta.Role)
			if c.Delta.Content == nil || *c.Delta.Content != "" {
				b.WriteString(" (content not empty)")
			}
		case c.Delta != nil && c.Delta.Content != nil:
			fmt.Fprintf(&b, " %q", *c.Delta.Content)
		case c.Text != nil:
			fmt.Fprintf(&b, " %q", *c.Text)
		}
		if c.FinishReason != nil {
			fmt.Fprintf(&b, " %s", *c.FinishReason)
		}
	}
	if a.Usage != nil && a.Usage.Completion != nil {
		fmt.Fprintf(&b, " @%d/%d", a.Usage.Prompt, *a.Usage.Completion)
		if a.Usage.Total != a.Usage.Prompt+*a.Usage.Completion {
			b.WriteString(" (bad total)")
		}
	}
	return b.String()
}

package llmstub

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmrequest"
)

func TestRecordPathListsWhatReachedTheStub(t *testing.T) {
	s := &Stub{}
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req.Header.Set("X-Request-ID", "r1")
	s.ServeHTTP(httptest.NewRecorder(), req)

	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, RecordPath, nil))
	var got []struct {
		Method string      `json:"method"`
		Path   string      `json:"path"`
		Header http.Header `json:"header"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "/v1/chat/completions" || got[0].Header.Get("X-Request-ID") != "r1" {
		t.Fatalf("recorded %+v", got)
	}
}

func TestTextTokensAreBytesOverFourRoundedUp(t *testing.T) {
	for s, want := range map[string]int64{"": 0, "a": 1, "abcd": 1, "abcde": 2, "é": 1, "😀😀": 2, strings.Repeat("x", 401): 101} {
		if got := TextTokens(s); got != want {
			t.Errorf("TextTokens(%q) = %d, want %d", s, got, want)
		}
	}
	if Answer(3) != "tok0 tok1 tok2" || Answer(0) != "" {
		t.Fatalf("Answer: %q", Answer(3))
	}
}

func TestPlainAnswersCarryTheUsageOfWhatTheyAnswer(t *testing.T) {
	tests := []struct {
		name   string
		ep     endpoint
		body   string
		answer int // Stub.AnswerTokens
		prompt int64
		each   int    // completion tokens per choice
		finish string // every choice's
		n      int    // choices (embeddings: data)
	}{
		{"chat, string contents: 4 per message + ceil(bytes/4)", chat,
			`{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hello world"}]}`,
			0, 4 + 4 + 4 + 3, 64, "stop", 1},
		{"chat, text parts counted, image parts not", chat,
			`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"http://x/y.png"}},{"type":"text","text":"i"}]}]}`,
			0, 4 + 2 + 1, 64, "stop", 1},
		{"chat, null and empty contents are the template only", chat,
			`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"user","content":""}]}`,
			0, 8, 64, "stop", 1},
		{"chat without messages (tests' bare bodies)", chat, `{"model":"m"}`, 0, 0, 64, "stop", 1},
		{"chat, n choices cut by max_completion_tokens (which wins over max_tokens)", chat,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"n":3,"max_completion_tokens":5,"max_tokens":99}`,
			0, 5, 5, "length", 3},
		{"chat, max_tokens above the natural length", chat,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`, 0, 5, 64, "stop", 1},
		{"chat, a cap equal to the natural length is a natural stop", chat,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":7.0}`, 7, 5, 7, "stop", 1},
		{"chat, AnswerTokens", chat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}`, 3, 5, 3, "stop", 2},
		{"completions, a string: +2", completions, `{"model":"m","prompt":"abcde"}`, 0, 2 + 2, 64, "stop", 1},
		{"completions, a batch: n choices per prompt", completions,
			`{"model":"m","prompt":["a","bb"],"n":2,"max_tokens":3}`, 0, 3 + 3, 3, "length", 4},
		{"completions, token ids are one prompt", completions, `{"model":"m","prompt":[1,2,3,4,5]}`, 0, 5 + 2, 64, "stop", 1},
		{"completions, batched token ids", completions, `{"model":"m","prompt":[[1,2],[3]]}`, 0, 4 + 3, 64, "stop", 2},
		{"completions, best_of is ignored beyond n", completions, `{"model":"m","prompt":"a","n":2,"best_of":4}`, 0, 3, 64, "stop", 2},
		{"completions ignore max_completion_tokens", completions, `{"model":"m","prompt":"a","max_completion_tokens":1}`, 0, 3, 64, "stop", 1},
		{"embeddings, a string", embeddings, `{"model":"e","input":"hello"}`, 0, 2 + 2, 0, "", 1},
		{"embeddings, a list", embeddings, `{"model":"e","input":["a","b","c"]}`, 0, 9, 0, "", 3},
		{"embeddings, token ids", embeddings, `{"model":"e","input":[1,2,3]}`, 0, 5, 0, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stub{AnswerTokens: tt.answer}
			w := post(s, tt.ep, tt.body, nil)
			if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			var a testAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Usage == nil {
				t.Fatalf("%v %s", err, w.Body)
			}
			completion := int64(tt.each * tt.n)
			if tt.ep == embeddings {
				if a.Usage.Completion != nil || a.Usage.Prompt != tt.prompt || a.Usage.Total != tt.prompt || len(a.Data) != tt.n {
					t.Fatalf("%s", w.Body)
				}
				for i, d := range a.Data {
					if d.Index != i {
						t.Fatalf("data %d has index %d", i, d.Index)
					}
				}
			} else {
				if a.Usage.Completion == nil || a.Usage.Prompt != tt.prompt || *a.Usage.Completion != completion || a.Usage.Total != tt.prompt+completion {
					t.Fatalf("usage %+v, want %d/%d: %s", a.Usage, tt.prompt, completion, w.Body)
				}
				if len(a.Choices) != tt.n {
					t.Fatalf("%d choices, want %d", len(a.Choices), tt.n)
				}
				for i, c := range a.Choices {
					text := c.Message.Content
					if tt.ep == completions {
						text = *c.Text
					} else if c.Message.Role != "assistant" {
						t.Fatalf("role %q", c.Message.Role)
					}
					if c.Index != i || text != Answer(tt.each) || c.FinishReason == nil || *c.FinishReason != tt.finish {
						t.Fatalf("choice %d: %+v %q", i, c, text)
					}
				}
			}
			if p, c := s.Produced(); p != tt.prompt || c != completion || s.Usage().Requests != 1 {
				t.Fatalf("Produced %d/%d (%d answers)", p, c, s.Usage().Requests)
			}
		})
	}
}

// TestPromptTokensNeverExceedTheBudgetBound: what the stub reports is what
// a budget settles; it must never be above what llm-api reserved for the
// prompt (llmrequest's bound with the default template options).
func TestPromptTokensNeverExceedTheBudgetBound(t *testing.T) {
	msgs := func(n int, content string) string {
		m := make([]string, n)
		for i := range m {
			m[i] = `{"role":"user","content":` + content + `}`
		}
		return `{"model":"m","messages":[` + strings.Join(m, ",") + `]}`
	}
	tests := []struct {
		ep   endpoint
		body string
	}{
		{chat, msgs(1, `"hi"`)},
		{chat, msgs(1, `""`)},
		{chat, msgs(500, `""`)},
		{chat, msgs(500, `"a"`)},
		{chat, msgs(3, strconv.Quote(strings.Repeat("lorem ipsum ", 1000)))},
		{chat, msgs(2, `"\u00e9\u00e9\u00e9\u00e9\ud83d\ude00"`)},
		{chat, msgs(2, `"`+strings.Repeat("\xff", 64)+`"`)}, // invalid UTF-8 decodes to 3 bytes a byte
		{chat, msgs(1, `[{"type":"text","text":"`+strings.Repeat("z", 333)+`"},{"type":"text","text":""}]`)},
		{chat, `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"why?"}],"n":4,"max_tokens":3,"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}`},
		{completions, `{"model":"m","prompt":""}`},
		{completions, `{"model":"m","prompt":"` + strings.Repeat("q", 1001) + `"}`},
		{completions, `{"model":"m","prompt":["","",""],"n":3}`},
		{completions, `{"model":"m","prompt":[0]}`},
		{completions, `{"model":"m","prompt":[[1,2,3],[],[4]]}`},
		{completions, `{"model":"m","prompt":["x",[1,2]]}`},
		{embeddings, `{"model":"e","input":""}`},
		{embeddings, `{"model":"e","input":["` + strings.Repeat("é", 50) + `","b"]}`},
		{embeddings, `{"model":"e","input":[[1],[2,3]]}`},
	}
	opts := func(string) llmrequest.Options {
		return llmrequest.Options{TemplateTokens: llmrequest.DefaultTemplateTokens, TemplateTokensPerMessage: llmrequest.DefaultTemplateTokensPerMessage}
	}
	eps := map[endpoint]llmrequest.Endpoint{chat: llmrequest.Chat, completions: llmrequest.Completions, embeddings: llmrequest.Embeddings}
	for i, tt := range tests {
		plan, err := llmrequest.Analyze(eps[tt.ep], []byte(tt.body), opts)
		if err != nil {
			t.Fatalf("%d: llmrequest refuses %.80s: %v", i, tt.body, err)
		}
		w := post(&Stub{}, tt.ep, tt.body, nil)
		var a testAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != 200 || a.Usage == nil {
			t.Fatalf("%d: %d %.200s", i, w.Code, w.Body)
		}
		if a.Usage.Prompt > plan.PromptTokens || a.Usage.Prompt < 0 {
			t.Errorf("%d: the stub's %d prompt tokens exceed the bound %d: %.80s", i, a.Usage.Prompt, plan.PromptTokens, tt.body)
		}
	}
}

func TestMalformedRequestsAre400AndProduceNothing(t *testing.T) {
	tests := []struct {
		ep          endpoint
		body, param string
	}{
		{chat, `[]`, ""},
		{chat, `null`, ""},
		{chat, `{"model":1}`, "model"},
		{chat, `{"model":"m","messages":{}}`, "messages"},
		{chat, `{"model":"m","messages":[1]}`, "messages[0]"},
		{chat, `{"model":"m","messages":[{"content":5}]}`, "messages[0].content"},
		{chat, `{"model":"m","messages":[{"content":[{"text":"no type"}]}]}`, "messages[0].content[0]"},
		{chat, `{"model":"m","messages":[{"content":[{"type":"text"}]}]}`, "messages[0].content[0].text"},
		{chat, `{"model":"m","n":0}`, "n"},
		{chat, `{"model":"m","n":129}`, "n"},
		{chat, `{"model":"m","n":1.5}`, "n"},
		{chat, `{"model":"m","max_tokens":0}`, "max_tokens"},
		{chat, `{"model":"m","max_completion_tokens":-3}`, "max_completion_tokens"},
		{chat, `{"model":"m","max_tokens":"5"}`, "max_tokens"},
		{chat, `{"model":"m","max_tokens":1e10}`, "max_tokens"},
		{chat, `{"model":"m","stream":"yes"}`, "stream"},
		{chat, `{"model":"m","stream":true,"stream_options":[]}`, "stream_options"},
		{chat, `{"model":"m","stream":true,"stream_options":{"include_usage":1}}`, "include_usage"},
		{completions, `{"model":"m"}`, "prompt"},
		{completions, `{"model":"m","prompt":[]}`, "prompt"},
		{completions, `{"model":"m","prompt":[1,"a"]}`, "prompt"},
		{completions, `{"model":"m","prompt":[1.5]}`, "prompt"},
		{completions, `{"model":"m","prompt":{}}`, "prompt"},
		{completions, `{"model":"m","prompt":["a",3]}`, "prompt"},
		{completions, `{"model":"m","prompt":[` + strings.TrimSuffix(strings.Repeat(`"a",`, 100), ",") + `],"n":41}`, "n"},
		{embeddings, `{"model":"e"}`, "input"},
		{embeddings, `{"model":"e","input":null}`, "input"},
	}
	for _, tt := range tests {
		s := &Stub{}
		w := post(s, tt.ep, tt.body, nil)
		var e struct {
			Error struct {
				Message, Type, Param string
				Code                 int
			}
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 400 || e.Error.Code != 400 ||
			e.Error.Type != "invalid_request_error" || e.Error.Param != tt.param || e.Error.Message == "" {
			t.Errorf("%.60s: %d %s (want param %q)", tt.body, w.Code, w.Body, tt.param)
		}
		if s.Usage() != (Usage{}) {
			t.Errorf("%.60s produced %+v", tt.body, s.Usage())
		}
	}
}

func TestStreamsSendTokenChunksAndTheUsageAskedFor(t *testing.T) {
	const hi = `"messages":[{"role":"user","content":"hi"}]` // 5 prompt tokens
	tests := []struct {
		name   string
		stub   *Stub
		ep     endpoint
		body   string
		want   []string
		prompt int64
		tokens int64
	}{
		{"chat without stream_options: no usage anywhere", &Stub{AnswerTokens: 3}, chat,
			`{"model":"m","stream":true,` + hi + `}`,
			[]string{"0 assistant", `0 "tok0"`, `0 " tok1"`, `0 " tok2" stop`}, 5, 3},
		{"include_usage: a last chunk without choices, cut by the cap", &Stub{}, chat,
			`{"model":"m","stream":true,"max_completion_tokens":2,"stream_options":{"include_usage":true},` + hi + `}`,
			[]string{"0 assistant", `0 "tok0"`, `0 " tok1" length`, "usage 5/2"}, 5, 2},
		{"continuous usage: every chunk its own choice's figure (vLLM's), n=2", &Stub{AnswerTokens: 2}, chat,
			`{"model":"m","stream":true,"n":2,"stream_options":{"include_usage":true,"continuous_usage_stats":true},` + hi + `}`,
			[]string{"0 assistant @5/0", "1 assistant @5/0", `0 "tok0" @5/1`, `1 "tok0" @5/1`,
				`0 " tok1" stop @5/2`, `1 " tok1" stop @5/2`, "usage 5/4"}, 5, 4},
		{"continuous_usage_stats without include_usage is ignored (as vLLM)", &Stub{AnswerTokens: 1}, chat,
			`{"model":"m","stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true},` + hi + `}`,
			[]string{"0 assistant", `0 "tok0" stop`}, 5, 1},
		{"include_usage false", &Stub{AnswerTokens: 1}, chat,
			`{"model":"m","stream":true,"stream_options":{"include_usage":false},` + hi + `}`,
			[]string{"0 assistant", `0 "tok0" stop`}, 5, 1},
		{"Chunks groups tokens", &Stub{AnswerTokens: 5, Chunks: 2}, chat,
			`{"model":"m","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},` + hi + `}`,
			[]string{"0 assistant @5/0", `0 "tok0 tok1 tok2" @5/3`, `0 " tok3 tok4" stop @5/5`, "usage 5/5"}, 5, 5},
		{"completions batch: no role chunk, prompt×n+choice, each prompt's own usage", &Stub{AnswerTokens: 2}, completions,
			`{"model":"m","stream":true,"prompt":["a","bbbbb"],"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`,
			[]string{`0 "tok0" @3/1`, `1 "tok0" @4/1`, `0 " tok1" stop @3/2`, `1 " tok1" stop @4/2`, "usage 7/4"}, 7, 4},
		{"completions, max_tokens", &Stub{}, completions,
			`{"model":"m","stream":true,"prompt":[1,2],"max_tokens":1,"n":2,"stream_options":{"include_usage":true}}`,
			[]string{`0 "tok0" length`, `1 "tok0" length`, "usage 4/2"}, 4, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.stub
			w := post(s, tt.ep, tt.body, nil)
			if w.Code != 200 || w.Header().Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			evs, raw, done := events(t, w.Body.Bytes())
			if !done {
				t.Fatal("no [DONE]")
			}
			var got []string
			for i, ev := range evs {
				got = append(got, render(ev))
				wantObj := "chat.completion.chunk"
				if tt.ep == completions {
					wantObj = "text_completion"
				}
				if ev.Object != wantObj {
					t.Fatalf("object %q", ev.Object)
				}
				if strings.Contains(raw[i], `"usage"`) != (ev.Usage != nil) {
					t.Fatalf("usage null: %s", raw[i])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("events\n got %q\nwant %q", got, tt.want)
			}
			if p, c := s.Produced(); p != tt.prompt || c != tt.tokens {
				t.Fatalf("Produced %d/%d, want %d/%d", p, c, tt.prompt, tt.tokens)
			}
		})
	}
}

// TestAStreamCutByTheClientCountsOnlyWhatWasSent: a client reads the role
// chunk and two tokens, then leaves; the stub stops at its next chunk.
func TestAStreamCutByTheClientCountsOnlyWhatWasSent(t *testing.T) {
	s := &Stub{ChunkInterval: 150 * time.Millisecond}
	srv := httptest.NewServer(s)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(res.Body)
	var read []string
	for len(read) < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			read = append(read, line)
		}
	}
	cancel()
	res.Body.Close()
	srv.Close() // waits for the handler
	if !strings.Contains(read[2], `" tok1"`) {
		t.Fatalf("read %q", read)
	}
	u := s.Usage()
	// the client had 2 tokens; the stub may have flushed one more chunk
	// before it saw the client go, never the rest of the 64
	if u.PromptTokens != 5 || u.CompletionTokens < 2 || u.CompletionTokens > 3 || u.Requests != 1 {
		t.Fatalf("Usage %+v after the client read 2 tokens", u)
	}
}

func TestAStreamMadeToFailClosesTheConnectionAfterKEvents(t *testing.T) {
	const body = `{"model":"%s","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, model, after string
		answer             int
		events             int
		completion         int64
	}{
		{"model fail-mid-stream: the role chunk and one token", ModelFailMidStream, "", 0, 2, 1},
		{"X-Stub-Fail-After: 4", "m", "4", 0, 4, 3},
		{"X-Stub-Fail-After: 0: headers only", "m", "0", 0, 0, 0},
		{"more than the stream has: all events, no [DONE]", "m", "99", 2, 4, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stub{AnswerTokens: tt.answer}
			srv := httptest.NewServer(s)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(strings.Replace(body, "%s", tt.model, 1)))
			if tt.after != "" {
				req.Header.Set("X-Stub-Fail-After", tt.after)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			srv.Close()
			if !errors.Is(err, io.ErrUnexpectedEOF) || res.StatusCode != 200 {
				t.Fatalf("%d, read error %v (want an abrupt end)", res.StatusCode, err)
			}
			evs, _, done := events(t, b)
			if done || len(evs) != tt.events {
				t.Fatalf("%d events, [DONE] %v: %q", len(evs), done, b)
			}
			if p, c := s.Produced(); p != 5 || c != tt.completion {
				t.Fatalf("Produced %d/%d", p, c)
			}
		})
	}
	t.Run("a plain answer is never sent", func(t *testing.T) {
		s := &Stub{}
		srv := httptest.NewServer(s)
		defer srv.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"x"}`))
		req.Header.Set("X-Stub-Fail-After", "1")
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("answered %d", res.StatusCode)
		}
		if s.Usage() != (Usage{}) {
			t.Fatalf("produced %+v", s.Usage())
		}
	})
}

func TestTheOtherFailureModesStillHold(t *testing.T) {
	s := &Stub{}
	for _, c := range []struct {
		model, header string
		status        int
	}{{"fail-500", "", 500}, {"fail-429", "", 429}, {"fail-x", "", 500}, {"fail-200", "", 500}, {"m", "503", 503}} {
		w := post(s, chat, `{"model":"`+c.model+`"}`, map[string]string{"X-Stub-Fail": c.header})
		if w.Code != c.status || !strings.Contains(w.Body.String(), Secret) || !strings.Contains(w.Body.String(), `"stub_error"`) {
			t.Errorf("%s/%s: %d %s", c.model, c.header, w.Code, w.Body)
		}
	}
	// stall: no answer until the request ends
	for _, c := range []struct{ body, header string }{{`{"model":"stall"}`, ""}, {`{"model":"m"}`, "1"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(c.body))
		req.Header.Set("X-Stub-Stall", c.header)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		cancel()
		if w.Body.Len() != 0 || ctx.Err() == nil {
			t.Errorf("stall %s: answered %q", c.body, w.Body)
		}
	}
	// stall-stream: the first token, then nothing
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"stall-stream","stream":true}`))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if evs, _, done := events(t, w.Body.Bytes()); done || len(evs) != 2 || render(evs[1]) != `0 "tok0"` {
		t.Fatalf("stall-stream: %q", w.Body)
	}
	if s.Usage() != (Usage{PromptTokens: 0, CompletionTokens: 1, Requests: 1}) {
		t.Fatalf("usage %+v", s.Usage())
	}
	// Hold: the first token, then the rest once released
	s = &Stub{Hold: make(chan struct{}), AnswerTokens: 3}
	srv := httptest.NewServer(s)
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for _, want := range []string{"assistant", "tok0"} {
		if line, _ := br.ReadString('\n'); !strings.Contains(line, want) {
			t.Fatalf("line %q, want %s", line, want)
		}
		_, _ = br.ReadString('\n')
	}
	if _, c := s.Produced(); c != 1 {
		t.Fatalf("held stream produced %d", c)
	}
	close(s.Hold)
	if rest, _ := io.ReadAll(br); !strings.HasSuffix(string(rest), "data: [DONE]\n\n") || !strings.Contains(string(rest), "tok2") {
		t.Fatalf("rest %q", rest)
	}
}

func TestUsageEndpointReportsAndResets(t *testing.T) {
	s := &Stub{AnswerTokens: 10}
	post(s, chat, `{"model":"m","messages":[{"role":"user","content":"hello"}]}`, nil)
	post(s, embeddings, `{"model":"e","input":"abc"}`, nil)
	get := func() Usage {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, UsagePath, nil))
		var u Usage
		if err := json.Unmarshal(w.Body.Bytes(), &u); err != nil || w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return u
	}
	if u := get(); u != (Usage{PromptTokens: 6 + 3, CompletionTokens: 10, Requests: 2}) {
		t.Fatalf("usage %+v", u)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, UsageResetPath, nil))
	if w.Code != 204 || get() != (Usage{}) {
		t.Fatalf("reset: %d, %+v", w.Code, get())
	}
	if n := len(s.Requests()); n != 2 {
		t.Fatalf("%d requests recorded, want only the two model requests", n)
	}
}

// TestConcurrentAnswersAreCountedExactly (run with -race).
func TestConcurrentAnswersAreCountedExactly(t *testing.T) {
	s := &Stub{AnswerTokens: 8}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				body := `{"model":"m","stream":` + strconv.FormatBool((i+j)%2 == 0) + `,"messages":[{"role":"user","content":"hi"}]}`
				res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if i == 0 && j == 2 {
					_ = s.Usage() // readers race with writers
				}
			}
		})
	}
	wg.Wait()
	if u := s.Usage(); u != (Usage{PromptTokens: 40 * 5, CompletionTokens: 40 * 8, Requests: 40}) {
		t.Fatalf("usage %+v", u)
	}
}

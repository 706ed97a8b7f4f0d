package llmrequest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func opts(images int64) func(string) Options {
	return func(string) Options {
		return Options{TemplateTokens: 100, TemplateTokensPerMessage: 10, ImageTokens: images}
	}
}

func TestAnalyzeReadsModelChoicesCapAndStream(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want Plan
	}{
		{"chat, max_completion_tokens wins", Chat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":7,"max_tokens":99}`,
			Plan{Model: "m", N: 1, Cap: 7}},
		{"chat, max_tokens only", Chat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":99,"n":3}`,
			Plan{Model: "m", N: 3, Cap: 99}},
		{"chat, no cap, stream asking usage", Chat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
			Plan{Model: "m", N: 1, Stream: true, IncludeUsage: true}},
		{"chat, 100.0 is 100", Chat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":100.0}`,
			Plan{Model: "m", N: 1, Cap: 100}},
		{"completions: n × prompts, best_of", Completions, `{"model":"m","prompt":["a","bb","ccc"],"n":2,"best_of":4,"max_tokens":5}`,
			Plan{Model: "m", N: 12, Cap: 5}},
		{"completions: token ids are one prompt", Completions, `{"model":"m","prompt":[1,2,3,4]}`,
			Plan{Model: "m", N: 1}},
		{"completions: batched token ids", Completions, `{"model":"m","prompt":[[1,2],[3]],"max_tokens":1}`,
			Plan{Model: "m", N: 2, Cap: 1}},
		{"embeddings", Embeddings, `{"model":"e","input":["x","y"],"n":1}`, Plan{Model: "e", N: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Analyze(tt.ep, []byte(tt.body), opts(0))
			if err != nil {
				t.Fatal(err)
			}
			p.PromptTokens, p.Choices, p.Prompts, p.src = 0, 0, 0, nil
			if p != tt.want {
				t.Fatalf("got %+v want %+v", p, tt.want)
			}
		})
	}
}

func TestChoicesAndPrompts(t *testing.T) {
	p, err := Analyze(Completions, []byte(`{"model":"m","prompt":["a","b","c"],"n":2,"best_of":4}`), opts(0))
	if err != nil || p.N != 12 || p.Choices != 4 || p.Prompts != 3 {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = Analyze(Chat, []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}`), opts(0))
	if err != nil || p.N != 3 || p.Choices != 3 || p.Prompts != 1 {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestPromptBoundCoversEveryRenderedByte(t *testing.T) {
	long := strings.Repeat("é", 1000) // 2000 bytes, at most 2000 tokens
	body := `{"model":"m","messages":[{"role":"system","content":"` + long + `"},{"role":"user","content":[{"type":"text","text":"` + long + `"}]}],` +
		`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]}`
	p, err := Analyze(Chat, []byte(body), opts(0))
	if err != nil {
		t.Fatal(err)
	}
	if p.PromptTokens < 4000+100+2*10 {
		t.Fatalf("bound %d below the texts' bytes plus the template", p.PromptTokens)
	}
	// the texts once, the rest twice: well below 2 × the body
	if p.PromptTokens > 2*int64(len(body))+120 {
		t.Fatalf("bound %d", p.PromptTokens)
	}
	// an escaped text is bounded by its escape's bytes, which are more
	esc := `{"model":"m","messages":[{"role":"user","content":"\u00e9\u00e9\n"}]}`
	q, _ := Analyze(Chat, []byte(esc), opts(0))
	if q.PromptTokens < 5+100+10 {
		t.Fatalf("escaped bound %d", q.PromptTokens)
	}
}

func TestImagePartsNeedAConfiguredCost(t *testing.T) {
	img := `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is it"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` +
		strings.Repeat("A", 100000) + `"}}]}]}`
	_, err := Analyze(Chat, []byte(img), opts(0))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeImagesNotAllowed || e.Param != "messages[0].content[1]" {
		t.Fatalf("%v", err)
	}
	p, err := Analyze(Chat, []byte(img), opts(765))
	if err != nil {
		t.Fatal(err)
	}
	// the image is 765 tokens, not 200,000 bytes of base64
	if p.PromptTokens > 2000 || p.PromptTokens < 765 {
		t.Fatalf("bound %d", p.PromptTokens)
	}
	_, err = Analyze(Chat, []byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`), opts(765))
	if !errors.As(err, &e) || e.Code != CodeUnsupportedPart {
		t.Fatalf("audio: %v", err)
	}
}

func TestAnalyzeRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		ep    Endpoint
		body  string
		param string
	}{
		"no model":         {Chat, `{"messages":[{"role":"user","content":"x"}]}`, "model"},
		"model not string": {Chat, `{"model":5,"messages":[{"role":"user","content":"x"}]}`, "model"},
		"no messages":      {Chat, `{"model":"m"}`, "messages"},
		"empty messages":   {Chat, `{"model":"m","messages":[]}`, "messages"},
		"message null":     {Chat, `{"model":"m","messages":[null]}`, "messages[0]"},
		"content number":   {Chat, `{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content"},
		"part not object":  {Chat, `{"model":"m","messages":[{"role":"user","content":["x"]}]}`, "messages[0].content[0]"},
		"n zero":           {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}`, "n"},
		"n huge":           {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"n":129}`, "n"},
		"n string":         {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"n":"3"}`, "n"},
		"cap zero":         {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, "max_tokens"},
		"cap negative":     {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":-1}`, "max_completion_tokens"},
		"cap fraction":     {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":1.5}`, "max_completion_tokens"},
		"cap 2^31":         {Completions, `{"model":"m","prompt":"x","max_tokens":2147483648}`, "max_tokens"},
		"stream string":    {Chat, `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"true"}`, "stream"},
		"no prompt":        {Completions, `{"model":"m"}`, "prompt"},
		"prompt object":    {Completions, `{"model":"m","prompt":{}}`, "prompt"},
		"prompt mixed":     {Completions, `{"model":"m","prompt":["a",{}]}`, "prompt"},
		"empty input list": {Embeddings, `{"model":"m","input":[]}`, "input"},
		"best_of huge":     {Completions, `{"model":"m","prompt":"x","best_of":500}`, "best_of"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Analyze(c.ep, []byte(c.body), opts(0))
			var e *Error
			if !errors.As(err, &e) || e.Param != c.param || e.Code == "" {
				t.Fatalf("%v (%+v)", err, e)
			}
		})
	}
}

func TestRewriteSendsExactlyOneCapAndAsksForUsage(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":99,"max_completion_tokens":50,"stream":true,"stream_options":{"include_usage":false}}`)
	p, err := Analyze(Chat, body, opts(0))
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Rewrite(42)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["max_tokens"]; ok || m["max_completion_tokens"] != float64(42) {
		t.Fatalf("caps: %s", out)
	}
	so := m["stream_options"].(map[string]any)
	if so["include_usage"] != true || so["continuous_usage_stats"] != true {
		t.Fatalf("stream options: %s", out)
	}
	p, err = Analyze(Completions, []byte(`{"model":"m","prompt":"x","max_tokens":900}`), opts(0))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Rewrite(7)
	if !strings.Contains(string(c), `"max_tokens":7`) || strings.Contains(string(c), "stream_options") {
		t.Fatalf("completions: %s", c)
	}
	if _, err := (Plan{}).Rewrite(1); err == nil {
		t.Fatal("a Plan Analyze did not make was rewritten")
	}
}

package llmusage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// vllmStream is what vLLM sends with include_usage and
// continuous_usage_stats.
const vllmStream = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":9,\"completion_tokens\":0}}\n\n" +
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":10,\"completion_tokens\":1}}\n\n" +
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":11,\"completion_tokens\":2}}\n\n" +
	"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":11,\"completion_tokens\":2}}\n\n" +
	"data: [DONE]\n\n"

func read(t *testing.T, s *Stream) string {
	t.Helper()
	b, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStreamWithoutUsageForTheClient(t *testing.T) {
	s := NewStream(io.NopCloser(strings.NewReader(vllmStream)), false, 1, 1)
	out := read(t, s)
	if strings.Contains(out, "usage") || strings.Count(out, "data: ") != 4 || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Fatalf("client stream:\n%s", out)
	}
	if !strings.Contains(out, `"content":"Hel"`) {
		t.Fatalf("content lost:\n%s", out)
	}
	if u := s.Usage(); u != (Usage{9, 2, true, false}) || !s.Done() {
		t.Fatalf("usage %+v done %v", u, s.Done())
	}
}

func TestStreamWithUsageForTheClient(t *testing.T) {
	s := NewStream(io.NopCloser(strings.NewReader(vllmStream)), true, 1, 1)
	out := read(t, s)
	if strings.Count(out, `"usage":null`) != 3 || !strings.Contains(out, `"choices":[],"usage":{"prompt_tokens":9`) {
		t.Fatalf("client stream:\n%s", out)
	}
}

func TestAbortedStreamKeepsTheLastUsageSeen(t *testing.T) {
	cut := vllmStream[:strings.Index(vllmStream, "lo\"")]
	s := NewStream(io.NopCloser(io.MultiReader(strings.NewReader(cut), iotest.ErrReader(io.ErrUnexpectedEOF))), false, 1, 1)
	_, err := io.ReadAll(s)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
	if u := s.Usage(); u != (Usage{9, 1, true, false}) || s.Done() {
		t.Fatalf("usage %+v done %v", u, s.Done())
	}
}

// TestAbortedStreamWithSeveralChoicesSumsThem: vLLM's running usage is
// per choice (and per prompt of a batch): an aborted stream is charged the
// sum of every choice's latest completion and each prompt once; a prompt
// that never reported makes the usage Partial.
func TestAbortedStreamWithSeveralChoicesSumsThem(t *testing.T) {
	chunk := func(i, p, c int) string {
		return fmt.Sprintf("data: {\"choices\":[{\"index\":%d,\"text\":\"x\"}],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\n", i, p, c)
	}
	// two prompts (7 and 11 tokens) × n=2: choices 0,1 → prompt 0; 2,3 → prompt 1
	in := chunk(0, 7, 1) + chunk(1, 7, 1) + chunk(2, 11, 1) + chunk(0, 7, 2) + chunk(3, 11, 1) + chunk(0, 7, 3) + chunk(2, 11, 2)
	s := NewStream(io.NopCloser(strings.NewReader(in)), false, 2, 2)
	read(t, s)
	if u := s.Usage(); u != (Usage{PromptTokens: 18, CompletionTokens: 3 + 1 + 2 + 1, Seen: true}) {
		t.Fatalf("%+v", u)
	}
	// only the first prompt reported
	s = NewStream(io.NopCloser(strings.NewReader(chunk(0, 7, 4)+chunk(1, 7, 2))), false, 2, 2)
	read(t, s)
	if u := s.Usage(); u != (Usage{PromptTokens: 7, CompletionTokens: 6, Seen: true, Partial: true}) {
		t.Fatalf("%+v", u)
	}
	// the final usage chunk is the request's total and wins
	s = NewStream(io.NopCloser(strings.NewReader(in+"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":18,\"completion_tokens\":9}}\n\n")), false, 2, 2)
	read(t, s)
	if u := s.Usage(); u != (Usage{PromptTokens: 18, CompletionTokens: 9, Seen: true}) {
		t.Fatalf("%+v", u)
	}
}

func TestStreamSurvivesOneByteReadsAndCRLF(t *testing.T) {
	crlf := strings.ReplaceAll(vllmStream, "\n", "\r\n")
	s := NewStream(io.NopCloser(iotest.OneByteReader(strings.NewReader(crlf))), false, 1, 1)
	out := read(t, s)
	if strings.Contains(out, "usage") || s.Usage() != (Usage{9, 2, true, false}) {
		t.Fatalf("%q %+v", out, s.Usage())
	}
}

func TestRewrittenChunksKeepTheTextAsWritten(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"content\":\"<b>&</b>\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n"
	out := read(t, NewStream(io.NopCloser(strings.NewReader(in)), false, 1, 1))
	if !strings.Contains(out, `"content":"<b>&</b>"`) {
		t.Fatalf("%s", out)
	}
}

func TestOtherEventsPassThrough(t *testing.T) {
	in := ": keep-alive\n\nevent: ping\ndata: not json\n\nid: 7\ndata: {\"a\":1}\n\n" +
		"data: {\"a\":\n" + "data: 2}\n\n" // multi-line data: untouched
	s := NewStream(io.NopCloser(strings.NewReader(in)), false, 1, 1)
	if out := read(t, s); out != in {
		t.Fatalf("%q", out)
	}
	if s.Usage().Seen {
		t.Fatal("usage from nowhere")
	}
}

func TestFromJSON(t *testing.T) {
	for body, want := range map[string]Usage{
		`{"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`: {5, 7, true, false},
		`{"usage":{"prompt_tokens":5,"total_tokens":5}}`:                        {5, 0, true, false}, // embeddings
		`{"usage":{"prompt_tokens":-1,"completion_tokens":7}}`:                  {},
		`{"usage":null}`: {},
		`{}`:             {},
		`[]`:             {},
	} {
		if got := FromJSON([]byte(body)); got != want {
			t.Errorf("%s: %+v", body, got)
		}
	}
}

// FuzzStream: any upstream bytes are read to the end without a panic; the
// client never gets a usage object it did not ask for from a well-formed
// usage chunk; the recorded usage is never negative.
func FuzzStream(f *testing.F) {
	f.Add([]byte(vllmStream), false)
	f.Add([]byte(vllmStream), true)
	f.Add([]byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1e400}}\n\n"), false)
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":-1}}\n\n"), false)
	f.Add([]byte("data:{\"choices\":[{}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\r\n\r\n"), false)
	f.Add([]byte("data: "+strings.Repeat("x", 70000)+"\n\n"), false)
	f.Add([]byte("data: [DONE]\n\ndata: [DONE]"), true)
	f.Fuzz(func(t *testing.T, in []byte, include bool) {
		s := NewStream(io.NopCloser(bytes.NewReader(in)), include, 2, 2)
		out, err := io.ReadAll(s)
		if err != nil {
			t.Fatal(err)
		}
		u := s.Usage()
		if u.PromptTokens < 0 || u.CompletionTokens < 0 {
			t.Fatalf("negative usage %+v", u)
		}
		if len(out) > len(in)+len(in)/2+64 {
			t.Fatalf("the stream grew from %d to %d bytes", len(in), len(out))
		}
	})
}

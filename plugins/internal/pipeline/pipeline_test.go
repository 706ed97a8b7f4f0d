package pipeline

import (
	"errors"
	"net/http"
	"testing"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

func headers(n int) map[string][]string {
	h := map[string][]string{}
	for i := range n {
		h["x-h"+string(rune('a'+i%26))+string(rune('a'+i/26))] = []string{"v"}
	}
	return h
}

// The runtime owns the header limit: a request over it is answered 431
// before the first stage that reads headers — after the stages before it
// (header-guard's request id rides on the 431) — and no stage after runs.
func TestHeaderLimitIsCheckedBeforeTheFirstStageThatReadsHeaders(t *testing.T) {
	var ran []string
	stage := func(name string, needs bool) Stage {
		return StageFunc(needs, func(r *Request) Result {
			ran = append(ran, name)
			if name == "id" {
				r.SetResponseHeader("X-Request-ID", "rid")
			}
			return Next
		})
	}
	p := New("p", Options{MaxHeaders: 3}, stage("id", false), stage("guard", true), stage("auth", true))
	for _, tt := range []struct {
		n      int
		status int
		ran    int
	}{{3, 0, 3}, {4, 431, 1}} {
		ran = nil
		f := exchange.NewFake("GET", "/", headers(tt.n))
		out := Run(f, p)
		if out.Status != tt.status || len(ran) != tt.ran {
			t.Fatalf("%d headers: outcome %+v, stages run %v", tt.n, out, ran)
		}
		if tt.status == 431 && (out.Code != CodeTooManyHeaders || f.ExitHeaders["X-Request-ID"] != "rid") {
			t.Fatalf("431: code %q, exit headers %v", out.Code, f.ExitHeaders)
		}
		if tt.status == 0 && !f.Flushed {
			t.Fatal("the buffered writes were not flushed")
		}
	}
}

func TestFailuresAnswer500AndNeverLetThrough(t *testing.T) {
	errHost := errors.New("pdk call failed")
	for _, tt := range []struct {
		name  string
		stage func(*Request) Result
		fail  error
		flush error
	}{
		{"stage panics", func(r *Request) Result { r.SetUpstreamHeader("X-User-ID", "u"); panic("boom") }, nil, nil},
		{"host read failed", func(r *Request) Result { r.ClientIP(); return Next }, errHost, nil},
		{"flush failed", func(*Request) Result { return Next }, nil, errHost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := exchange.NewFake("GET", "/", nil)
			f.FailWith, f.FlushErr = tt.fail, tt.flush
			out := Run(f, New("p", Options{}, StageFunc(false, tt.stage)))
			if out.Status != http.StatusInternalServerError || out.Code != CodeEdgeError || out.Err == nil || f.ExitStatus != 500 {
				t.Fatalf("outcome %+v, exit %d", out, f.ExitStatus)
			}
		})
	}
}

func TestAnAnswerEndsThePipelineWithTheEdgesErrorBody(t *testing.T) {
	later := false
	p := New("p", Options{},
		StageFunc(false, func(*Request) Result {
			return Deny(401, "token_expired", "invalid token", map[string]string{"WWW-Authenticate": `Bearer realm="edgeguard"`})
		}),
		StageFunc(false, func(*Request) Result { later = true; return Next }))
	f := exchange.NewFake("GET", "/", nil)
	out := Run(f, p)
	if later || out.Status != 401 || out.Code != "token_expired" || f.Flushed {
		t.Fatalf("outcome %+v, later stage ran %v, flushed %v", out, later, f.Flushed)
	}
	if string(f.ExitBody) != `{"error":{"code":"token_expired","message":"invalid token"}}` ||
		f.ExitHeaders["Content-Type"] != exchange.ContentTypeJSON || f.ExitHeaders["WWW-Authenticate"] == "" {
		t.Fatalf("exit %s %v", f.ExitBody, f.ExitHeaders)
	}
}

package llmstub

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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

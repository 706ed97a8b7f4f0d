package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func newClient(t *testing.T, cfg Config, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL + "/"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRunSendsSandboxFusionsRequestAndReadsItsAnswer(t *testing.T) {
	c := newClient(t, Config{Token: []byte("sbx-token-0123456789"), Timeout: 5 * time.Second}, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/run_code" || r.Header.Get("Authorization") != "Bearer sbx-token-0123456789" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req["language"] != "python" || req["code"] != "print(1)" || req["run_timeout"] != float64(4) {
			http.Error(w, fmt.Sprint(req), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"status":"Success","message":"","compile_result":null,"run_result":{"status":"Finished","execution_time":0.02,"return_code":0,"stdout":"1\n","stderr":""},"executor_pod_name":null,"files":{}}`)
	})
	res, err := c.Run(context.Background(), "print(1)")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "Success" || res.RunStatus != "Finished" || res.ReturnCode == nil || *res.ReturnCode != 0 || res.Stdout != "1\n" || res.Truncated {
		t.Fatalf("%+v", res)
	}
}

func TestRunOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   error
		check  func(*Result) bool
	}{
		{"program failed", 200, `{"status":"Failed","run_result":{"status":"Finished","return_code":1,"stdout":"","stderr":"Traceback"}}`, nil,
			func(r *Result) bool { return r.Status == "Failed" && *r.ReturnCode == 1 && r.Stderr == "Traceback" }},
		{"sandbox error", 200, `{"status":"SandboxError","message":"no runner"}`, nil,
			func(r *Result) bool { return r.Status == "SandboxError" && r.Stderr == "no runner" }},
		{"output truncated", 200, `{"status":"Success","run_result":{"stdout":"` + strings.Repeat("é", 100) + `"}}`, nil,
			func(r *Result) bool { return r.Truncated && len(r.Stdout) <= 15 && utf8.ValidString(r.Stdout) }},
		{"server error", 502, `bad gateway`, ErrUnavailable, nil},
		{"client error", 400, `{}`, ErrBadResponse, nil},
		{"not JSON", 200, `<html>`, ErrBadResponse, nil},
		{"no status", 200, `{"run_result":{}}`, ErrBadResponse, nil},
		{"too large", 200, `{"status":"Success","message":"` + strings.Repeat("x", MaxResponseBytes) + `"}`, ErrBadResponse, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, Config{MaxOutputBytes: 15}, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			res, err := c.Run(context.Background(), "x")
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil || !tc.check(res) {
				t.Fatalf("%+v %v", res, err)
			}
		})
	}
}

func TestRunIsBoundedInTimeAndFollowsNoRedirect(t *testing.T) {
	c := newClient(t, Config{Timeout: 300 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	start := time.Now()
	if _, err := c.Run(context.Background(), "x"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("not bounded")
	}
	redirected := false
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { redirected = true }))
	defer target.Close()
	r := newClient(t, Config{}, func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, target.URL, http.StatusTemporaryRedirect)
	})
	if _, err := r.Run(context.Background(), "x"); !errors.Is(err, ErrBadResponse) || redirected {
		t.Fatalf("err %v, redirected %v", err, redirected)
	}
}

func TestNewNeedsAURL(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no error")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"status":"Success","run_result":{"status":"Finished","return_code":0,"stdout":"1\n","stderr":""}}`))
	f.Add([]byte(`{"status":"SandboxError","message":"x"}`))
	f.Add([]byte(`{"status":"","run_result":null}`))
	c := &Client{maxOut: 64}
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := c.decode(raw)
		if err != nil {
			return
		}
		if res.Status == "" || len(res.Stdout) > 64+3 || len(res.Stderr) > 64+3 || !utf8.ValidString(res.Stdout) || !utf8.ValidString(res.Stderr) {
			t.Fatalf("%+v", res)
		}
	})
}

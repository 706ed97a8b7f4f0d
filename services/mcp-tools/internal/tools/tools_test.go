package tools

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/fetch"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/sandbox"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type fakeFetcher struct{ err error }

func (f fakeFetcher) Fetch(_ context.Context, url string) (*fetch.Page, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &fetch.Page{URL: url, Status: 200, ContentType: "text/plain", Text: "hello"}, nil
}

type fakeRunner struct {
	mu   sync.Mutex
	runs []string
	err  error
}

func (f *fakeRunner) Run(ctx context.Context, code string) (*sandbox.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("no deadline on the tool context")
	}
	f.runs = append(f.runs, code)
	zero := 0
	return &sandbox.Result{Status: "Success", RunStatus: "Finished", ReturnCode: &zero, Stdout: "ok\n"}, nil
}

func (f *fakeRunner) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.runs) }

var fixedNow = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func newServer(t *testing.T, approvals bool) (*Server, *fakeRunner, *approval.Store) {
	t.Helper()
	r := &fakeRunner{}
	var st *approval.Store
	if approvals {
		st = approval.New(approval.Config{Now: func() time.Time { return fixedNow }})
	}
	s, err := New(Config{Fetcher: fakeFetcher{}, Runner: r, Approvals: st, RequireApproval: approvals,
		MaxCodeBytes: 1024, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	return s, r, st
}

// session connects an in-memory client to s as id (nil: no identity in
// the context, which must fail closed).
func session(t *testing.T, s *Server, id *identity.Identity) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	if id != nil {
		ctx = edgehttp.WithIdentity(ctx, id)
	}
	ss, err := s.MCP.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func listed(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	return out
}

func structured(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestListingFollowsEachToolsPolicy(t *testing.T) {
	s, _, _ := newServer(t, true)
	for _, tc := range []struct {
		name string
		id   identity.Identity
		want []string
	}{
		{"user", identity.Identity{Subject: "u", RealmRoles: []string{"user"}, AuthMethod: "jwt"}, []string{"fetch_url", "run_python", "time_now"}},
		{"user by API key", identity.Identity{Subject: "u", RealmRoles: []string{"user"}, AuthMethod: "apikey"}, []string{"fetch_url", "run_python", "time_now"}},
		{"admin without user", identity.Identity{Subject: "a", RealmRoles: []string{"admin"}, AuthMethod: "jwt"}, []string{"time_now"}},
		{"guest role", identity.Identity{Subject: "g", RealmRoles: []string{"guest"}, AuthMethod: "jwt"}, []string{"time_now"}},
		{"guest flag with user", identity.Identity{Subject: "g", Guest: true, RealmRoles: []string{"user"}, AuthMethod: "jwt"}, []string{"time_now"}},
		{"no roles", identity.Identity{Subject: "n", AuthMethod: "jwt"}, []string{"time_now"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := session(t, s, &tc.id)
			if got := listed(t, cs); !slices.Equal(got, tc.want) {
				t.Fatalf("tools = %v, want %v", got, tc.want)
			}
			for _, name := range []string{"fetch_url", "run_python"} {
				_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: map[string]any{"url": "https://example.com", "code": "1"}})
				if allowed := slices.Contains(tc.want, name); allowed != (err == nil) {
					t.Errorf("%s: err %v, allowed %v", name, err, allowed)
				}
			}
		})
	}
}

func TestWithoutAnIdentityEveryMethodFails(t *testing.T) {
	s, r, _ := newServer(t, false)
	ct, st := mcp.NewInMemoryTransports()
	ss, err := s.MCP.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err == nil {
		defer cs.Close()
		if _, err := cs.ListTools(context.Background(), nil); err == nil {
			t.Fatal("tools/list without identity succeeded")
		}
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"code": "1"}}); err == nil {
			t.Fatal("tools/call without identity succeeded")
		}
	}
	if r.count() != 0 {
		t.Fatal("ran without identity")
	}
}

func TestTimeNowUsesTheInjectedClock(t *testing.T) {
	s, _, _ := newServer(t, true)
	cs := session(t, s, &identity.Identity{Subject: "g", RealmRoles: []string{"guest"}})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "time_now", Arguments: map[string]any{"timezone": "Asia/Tokyo"}})
	if err != nil || res.IsError {
		t.Fatalf("%v %v", res, err)
	}
	m := structured(t, res)
	if m["time"] != "2030-05-06T16:08:09+09:00" || m["utc"] != "2030-05-06T07:08:09Z" || m["unix"] != float64(fixedNow.Unix()) {
		t.Fatalf("%v", m)
	}
}

func TestRunPythonNeedsAnApprovalForTheSameUserAndCode(t *testing.T) {
	s, r, st := newServer(t, true)
	alice := &identity.Identity{Subject: "alice", RealmRoles: []string{"user"}, AuthMethod: "jwt"}
	cs := session(t, s, alice)
	callRun := func(args map[string]any) map[string]any {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_python", Arguments: args})
		if err != nil {
			t.Fatal(err)
		}
		return structured(t, res)
	}
	m := callRun(map[string]any{"code": "print(1)"})
	id, _ := m["approval_id"].(string)
	if m["status"] != "approval_pending" || !approval.ValidID(id) || r.count() != 0 {
		t.Fatalf("%v", m)
	}
	if _, err := st.Decide(id, approval.User{Subject: "admin"}, true); err != nil {
		t.Fatal(err)
	}
	if m := callRun(map[string]any{"code": "print(1)", "approval_id": id}); m["status"] != "executed" || r.count() != 1 {
		t.Fatalf("%v", m)
	}
	if m := callRun(map[string]any{"code": "print(1)", "approval_id": id}); m["error"] != "approval_used" || r.count() != 1 {
		t.Fatalf("%v", m)
	}
}

func TestRunPythonSandboxFailuresAreToolErrors(t *testing.T) {
	s, r, _ := newServer(t, false)
	r.err = sandbox.ErrUnavailable
	cs := session(t, s, &identity.Identity{Subject: "alice", RealmRoles: []string{"user"}})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "run_python", Arguments: map[string]any{"code": "1"}})
	if err != nil || !res.IsError || structured(t, res)["error"] != "sandbox_unavailable" {
		t.Fatalf("%v %v", res, err)
	}
}

func TestFetchURLErrorsAreToolErrors(t *testing.T) {
	for err, code := range map[error]string{
		fetch.ErrBlocked:     "destination_not_allowed",
		fetch.ErrNotText:     "not_text",
		fetch.ErrUnavailable: "fetch_failed",
	} {
		s, err2 := New(Config{Fetcher: fakeFetcher{err: err}})
		if err2 != nil {
			t.Fatal(err2)
		}
		cs := session(t, s, &identity.Identity{Subject: "alice", RealmRoles: []string{"user"}})
		res, cerr := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fetch_url", Arguments: map[string]any{"url": "https://example.com/"}})
		if cerr != nil || !res.IsError || structured(t, res)["error"] != code {
			t.Errorf("%v: %v %v", err, res, cerr)
		}
	}
}

func TestDecodeArgs(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // "" ok, else a substring of the error
	}{
		{``, ""},
		{`null`, ""},
		{`{}`, ""},
		{` {"code":"x"} `, ""},
		{`{"code":"x","approval_id":""}`, ""},
		{`[]`, "JSON object"},
		{`"x"`, "JSON object"},
		{`{`, "not valid JSON"},
		{`{"code":"x"}{}`, "trailing data"},
		{`{"code":"x"} x`, "trailing data"},
		{`{"code":1}`, `argument "code" has the wrong type`},
		{`{"other":1}`, "unknown argument"},
		{`{"code":"x","CODE":"y"}`, "unknown argument"},
	} {
		var a RunPythonArgs
		err := decodeArgs(json.RawMessage(tc.raw), &a, "code", "approval_id")
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: err %v, want %q", tc.raw, err, tc.want)
		}
	}
}

func TestDecodeRunPythonArgs(t *testing.T) {
	for _, tc := range []struct {
		raw string
		ok  bool
	}{
		{`{"code":"print(1)"}`, true},
		{`{"code":"print(1)","approval_id":"apr_abcdefghijklmnopqrstuvwxyz"}`, true},
		{`{"code":"   "}`, false},
		{`{"code":"` + strings.Repeat("x", 1025) + `"}`, false},
		{`{"code":"a\u0000b"}`, false},
		{`{"code":"\udc00"}`, true}, // encoding/json turns a lone surrogate into U+FFFD
		{`{"code":"x","approval_id":"apr_x"}`, false},
		{`{"approval_id":"apr_abcdefghijklmnopqrstuvwxyz"}`, false},
	} {
		_, err := DecodeRunPythonArgs(json.RawMessage(tc.raw), 1024)
		if (err == nil) != tc.ok {
			t.Errorf("%.60q: err %v", tc.raw, err)
		}
	}
}

func FuzzDecodeRunPythonArgs(f *testing.F) {
	for _, s := range []string{`{"code":"print(1)"}`, `{"code":"x","approval_id":"apr_abcdefghijklmnopqrstuvwxyz"}`,
		`null`, `{"code":1}`, `{"code":"x"}{}`, `[]`, "{\"code\":\"\\u0000\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := DecodeRunPythonArgs(raw, 1024)
		if err != nil {
			return
		}
		if strings.TrimSpace(a.Code) == "" || len(a.Code) > 1024 || strings.IndexByte(a.Code, 0) >= 0 {
			t.Fatalf("accepted code %q", a.Code)
		}
		if a.ApprovalID != "" && !approval.ValidID(a.ApprovalID) {
			t.Fatalf("accepted approval id %q", a.ApprovalID)
		}
	})
}

func FuzzDecodeFetchURLArgs(f *testing.F) {
	for _, s := range []string{`{"url":"https://example.com/a?b=c#d"}`, `{"url":"file:///etc/passwd"}`,
		`{"url":"http://u:p@h/"}`, `{"url":"http://[::1]:80/"}`, `{}`, `{"url":"http://exa mple.com"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := DecodeFetchURLArgs(raw)
		if err != nil {
			return
		}
		u, err := fetch.ParseURL(a.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" {
			t.Fatalf("accepted %q (%v)", a.URL, err)
		}
	})
}

func FuzzDecodeTimeNowArgs(f *testing.F) {
	for _, s := range []string{`{}`, `{"timezone":"Europe/Berlin"}`, `{"timezone":"../../etc/passwd"}`, `{"timezone":5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := DecodeTimeNowArgs(raw)
		if err == nil && len(a.Timezone) > maxZoneName {
			t.Fatalf("accepted zone of %d bytes", len(a.Timezone))
		}
	})
}

// BenchmarkListTools is tools/list through the policy filter (in-memory
// transport: the MCP layer's cost without HTTP).
func BenchmarkListTools(b *testing.B) {
	s, err := New(Config{Fetcher: fakeFetcher{}, Runner: &fakeRunner{}, Approvals: approval.New(approval.Config{}), RequireApproval: true})
	if err != nil {
		b.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ctx := edgehttp.WithIdentity(context.Background(), &identity.Identity{Subject: "u", RealmRoles: []string{"user"}})
	ss, err := s.MCP.Connect(ctx, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "b", Version: "1"}, nil).Connect(context.Background(), ct, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cs.ListTools(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

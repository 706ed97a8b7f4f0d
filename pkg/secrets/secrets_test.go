package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/rs/zerolog"
)

const value = "k3H9qvXz0pL2mN8rT5wY7aB4cD6eF1gJ"

func mapEnv(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func mapFiles(kv ...string) func(string) ([]byte, error) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(p string) ([]byte, error) {
		if v, ok := m[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}
}

// fake is a backend with a fixed answer per secret.
type fake struct {
	name    string
	answers map[string]error
	values  map[string]string
	calls   int
}

func (f *fake) Name() string             { return f.name }
func (f *fake) Where(name string) string { return "not in " + f.name }
func (f *fake) Lookup(_ context.Context, name string) ([]byte, error) {
	f.calls++
	if v, ok := f.values[name]; ok {
		return []byte(v), nil
	}
	if err, ok := f.answers[name]; ok {
		return nil, err
	}
	return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
}

func TestResolverOrderAndFallback(t *testing.T) {
	testenv.RecordSecret(value, "Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds")
	down := fmt.Errorf("vault: %w: connection refused", ErrUnavailable)
	denied := errors.New("S: vault: permission denied")
	tests := []struct {
		name        string
		first       *fake
		second      *fake
		wantValue   string
		wantBackend string
		wantErr     error  // errors.Is
		wantMsg     string // substring
	}{
		{"first wins", &fake{name: "vault", values: map[string]string{"S": "v1"}}, &fake{name: "file", values: map[string]string{"S": "f1"}}, "v1", "vault", nil, ""},
		{"not found falls through", &fake{name: "vault"}, &fake{name: "file", values: map[string]string{"S": "f1"}}, "f1", "file", nil, ""},
		{"unavailable falls back to the file", &fake{name: "vault", answers: map[string]error{"S": down}}, &fake{name: "file", values: map[string]string{"S": "f1"}}, "f1", "file", nil, ""},
		{"neither has it", &fake{name: "vault"}, &fake{name: "file"}, "", "", ErrNotFound, "not in vault, not in file"},
		{"unavailable and no fallback", &fake{name: "vault", answers: map[string]error{"S": down}}, &fake{name: "file"}, "", "", ErrUnavailable, "connection refused; not in vault, not in file"},
		{"a refusal stops the search", &fake{name: "vault", answers: map[string]error{"S": denied}}, &fake{name: "file", values: map[string]string{"S": "f1"}}, "", "vault", denied, "permission denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewResolver(tc.first, tc.second)
			v, b, err := r.Lookup(context.Background(), "S")
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("err %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
				}
				return
			}
			if err != nil || string(v) != tc.wantValue || b != tc.wantBackend {
				t.Fatalf("got %q from %q, %v", v, b, err)
			}
		})
	}
}

func TestFileAndEnvBackends(t *testing.T) {
	f := File{Getenv: mapEnv("S_FILE", "/s", "E_FILE", "/e", "M_FILE", "/missing"), ReadFile: mapFiles("/s", " "+value+"\n", "/e", "\n")}
	if v, err := f.Lookup(context.Background(), "S"); err != nil || string(v) != value {
		t.Fatal(v, err)
	}
	if _, err := f.Lookup(context.Background(), "U"); !errors.Is(err, ErrNotFound) || err.Error() != "U_FILE: secret not found" {
		t.Fatal(err)
	}
	if _, err := f.Lookup(context.Background(), "E"); !errors.Is(err, ErrEmpty) || err.Error() != "E_FILE: /e is empty" {
		t.Fatal(err)
	}
	if _, err := f.Lookup(context.Background(), "M"); !errors.Is(err, fs.ErrNotExist) || err.Error() != "M_FILE: cannot read /missing" {
		t.Fatal(err)
	}
	e := Env{Getenv: mapEnv("S", " "+value+" ", "B", "  ")}
	if v, err := e.Lookup(context.Background(), "S"); err != nil || string(v) != value {
		t.Fatal(v, err)
	}
	for _, n := range []string{"B", "U"} {
		if _, err := e.Lookup(context.Background(), n); !errors.Is(err, ErrNotFound) {
			t.Fatal(n, err)
		}
	}
}

// The access records name the secret, the backend and the outcome; the
// log never holds the value.
func TestAccessRecordsAtDebugWithoutTheValue(t *testing.T) {
	down := fmt.Errorf("vault: %w", ErrUnavailable)
	r := NewResolver(&fake{name: "vault", answers: map[string]error{"S": down}}, File{Getenv: mapEnv("S_FILE", "/s"), ReadFile: mapFiles("/s", value)})
	if _, _, err := r.Lookup(context.Background(), "S"); err != nil { // before a logger: kept
		t.Fatal(err)
	}
	var buf testenv.Buffer
	r.Attach(zerolog.New(&buf).Level(zerolog.DebugLevel))
	if _, _, err := r.Lookup(context.Background(), "T"); err == nil {
		t.Fatal("T found")
	}
	out := buf.String()
	for _, want := range []string{
		`"secret":"S","backend":"vault","outcome":"unavailable"`,
		`"secret":"S","backend":"file","outcome":"found"`,
		`"secret":"T","backend":"file","outcome":"not_found"`,
		`"level":"debug"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, value) || strings.Contains(out, value[:8]) {
		t.Fatalf("the log carries the value:\n%s", out)
	}
	// at info level nothing is logged
	buf2 := testenv.Buffer{}
	r.Attach(zerolog.New(&buf2).Level(zerolog.InfoLevel))
	_, _, _ = r.Lookup(context.Background(), "S")
	if buf2.String() != "" {
		t.Fatalf("logged above debug: %s", buf2.String())
	}
}

// A mounted secret swapped atomically by symlink (what Kubernetes does to
// a secret volume) is picked up by Refresh; a refused new value keeps the
// old one; an optional file removed clears the value.
func TestValueFollowsASymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	write := func(sub, content string) {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "token"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(sub string) { // ..data -> sub, atomically (rename over the link)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(sub, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("v1", value+"\n")
	swap("v1")
	link := filepath.Join(dir, "token")
	if err := os.Symlink(filepath.Join("..data", "token"), link); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(File{Getenv: mapEnv("T_FILE", link), ReadFile: os.ReadFile})
	load := func(ctx context.Context) ([]byte, string, error) {
		b, from, err := r.Lookup(ctx, "T")
		if err == nil && len(b) < 16 {
			return nil, from, errors.New("T_FILE: too short")
		}
		return b, from, err
	}
	ctx := context.Background()
	v, err := NewValue(ctx, "T", false, load)
	if err != nil || string(v.Get()) != value {
		t.Fatal(err)
	}
	if changed, _, err := v.Refresh(ctx); changed || err != nil {
		t.Fatal("unchanged file reported", changed, err)
	}
	rotated := "Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"
	write("v2", rotated)
	swap("v2")
	if changed, backend, err := v.Refresh(ctx); !changed || backend != "file" || err != nil || string(v.Get()) != rotated {
		t.Fatalf("rotation not seen: %v %q %v", changed, backend, err)
	}
	write("v3", "short")
	swap("v3")
	if changed, _, err := v.Refresh(ctx); changed || err == nil || string(v.Get()) != rotated {
		t.Fatalf("a refused value replaced the current one: %v %v", changed, err)
	}
	// optional: removal clears it; a required value keeps its last one
	write("v4", rotated)
	swap("v4")
	opt, err := NewValue(ctx, "T", true, load)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "v4", "token")); err != nil {
		t.Fatal(err)
	}
	if changed, _, err := opt.Refresh(ctx); !changed || err != nil || opt.Get() != nil {
		t.Fatalf("optional value not cleared: %v %v", changed, err)
	}
	if _, _, err := v.Refresh(ctx); err == nil || string(v.Get()) != rotated {
		t.Fatalf("required value lost: %v", err)
	}
}

func TestWatchLogsRotationAndFailureOnce(t *testing.T) {
	cur := value
	var fail error
	load := func(context.Context) ([]byte, string, error) { return []byte(cur), "file", fail }
	v, err := NewValue(context.Background(), "S", false, load)
	if err != nil {
		t.Fatal(err)
	}
	var buf testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// drive Watch's ticks by hand: a tiny interval and wait for the effect
	go func() { defer close(done); Watch(ctx, time.Millisecond, zerolog.New(&buf), v) }()
	waitFor := func(cond func() bool) {
		for i := 0; i < 5000 && !cond(); i++ {
			time.Sleep(time.Millisecond)
		}
		if !cond() {
			t.Fatalf("condition not met; log:\n%s", buf.String())
		}
	}
	rotated := "Zq8Wn2Lp5Rt7Yx1Cv4Bm6Nk9Hj3Gf0Ds"
	v.mu.Lock()
	cur = rotated
	v.mu.Unlock()
	waitFor(func() bool { return string(v.Get()) == rotated })
	v.mu.Lock()
	fail = errors.New("S_FILE: cannot read /s")
	v.mu.Unlock()
	waitFor(func() bool { return strings.Count(buf.String(), "secret refresh failed") == 1 })
	time.Sleep(20 * time.Millisecond) // several more failing ticks
	cancel()
	<-done
	out := buf.String()
	if strings.Count(out, "secret refresh failed") != 1 || !strings.Contains(out, `"message":"secret rotated"`) {
		t.Fatalf("log:\n%s", out)
	}
	if strings.Contains(out, value) || strings.Contains(out, rotated) {
		t.Fatalf("the log carries a value:\n%s", out)
	}
}

func TestValueNeverPrints(t *testing.T) {
	v := Static([]byte(value))
	js, err := json.Marshal(struct{ V *Value }{v})
	if err != nil {
		t.Fatal(err)
	}
	holder := struct{ Pepper *Value }{v}
	for _, out := range []string{fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s", v, v, v, v), string(js),
		fmt.Sprintf("%v %+v %#v", holder, holder, holder)} {
		if !strings.Contains(out, "[secret]") {
			t.Fatalf("%q does not say [secret]", out)
		}
		if strings.Contains(out, value) {
			t.Fatal(out)
		}
	}
	var unset *Value
	if unset.Get() != nil || Static(nil).Get() != nil {
		t.Fatal("unset value")
	}
}

package runcmd

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChildEnvDropsEdgeguardAPIKeyAndReplacesTheRunsVariables(t *testing.T) {
	env := []string{"PATH=/bin", "EDGEGUARD_API_KEY=sk_live_old", "OPENAI_API_KEY=old", "OPENAI_BASE_URL=old",
		"MY_KEY=old", "KEEP=1", "WEIRD", "=x"}
	vars := map[string]string{EnvKey: "key", EnvBaseURL: "base", "MY_KEY": "key", "LLM_URL": "base"}
	got := childEnv(env, vars, "sk_live_new", "https://edge.example.com/v1")
	want := []string{"PATH=/bin", "KEEP=1", "WEIRD", "=x", "LLM_URL=https://edge.example.com/v1", "MY_KEY=sk_live_new",
		"OPENAI_API_KEY=sk_live_new", "OPENAI_BASE_URL=https://edge.example.com/v1"}
	if !slices.Equal(got, want) {
		t.Fatalf("child env\n got %q\nwant %q", got, want)
	}
}

func TestDefaultNameIsTheCommandsAndUnique(t *testing.T) {
	shape := regexp.MustCompile(`^run:[A-Za-z0-9._-]{1,40}:[0-9a-f]{6}$`)
	for cmd, base := range map[string]string{
		"python3":                    "python3",
		"/usr/bin/node":              "node",
		"./my tool\x1b[2J":           "my_tool__2J",
		strings.Repeat("x", 100):     strings.Repeat("x", 40),
		"/opt/é/agent":               "agent",
		"C:\\Program Files\\a b.exe": "",
		"/":                          "_",
		"пайтон":                     strings.Repeat("_", 12),
	} {
		n := defaultName(cmd)
		if !shape.MatchString(n) || (base != "" && !strings.HasPrefix(n, "run:"+base+":")) {
			t.Errorf("defaultName(%q) = %q", cmd, n)
		}
	}
	seen := map[string]bool{}
	for range 50 {
		seen[defaultName("node")] = true
	}
	if len(seen) < 49 { // 24 random bits: one collision among 50 is a chance in ~13 000; two fail
		t.Errorf("50 runs of one command got %d distinct names", len(seen))
	}
}

func TestFlagChecks(t *testing.T) {
	ok := flags{ttl: time.Hour}
	if vars, err := ok.check(); err != nil || len(vars) != 2 {
		t.Fatalf("defaults: %v %v", vars, err)
	}
	for name, fl := range map[string]flags{
		"ttl 0":         {ttl: 0},
		"ttl negative":  {ttl: -time.Second},
		"ttl over 1h":   {ttl: time.Hour + time.Second},
		"ttl fraction":  {ttl: 1500 * time.Millisecond},
		"roles":         {ttl: time.Minute, roles: []string{"user"}, noRoles: true},
		"blank name":    {ttl: time.Minute, name: "  "},
		"bad var":       {ttl: time.Minute, keyEnv: []string{"1A"}},
		"empty var":     {ttl: time.Minute, keyEnv: []string{""}},
		"var with =":    {ttl: time.Minute, baseURLEnv: []string{"A=B"}},
		"edgeguard var": {ttl: time.Minute, keyEnv: []string{"EDGEGUARD_API_KEY"}},
		"key as url":    {ttl: time.Minute, baseURLEnv: []string{"OPENAI_API_KEY"}},
		"url as key":    {ttl: time.Minute, keyEnv: []string{"OPENAI_BASE_URL"}},
		"both kinds":    {ttl: time.Minute, keyEnv: []string{"X"}, baseURLEnv: []string{"X"}},
		"long var name": {ttl: time.Minute, keyEnv: []string{strings.Repeat("A", 129)}},
	} {
		if _, err := fl.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, ttl := range []time.Duration{time.Second, 90 * time.Second, time.Hour} {
		if _, err := (&flags{ttl: ttl}).check(); err != nil {
			t.Errorf("ttl %s refused: %v", ttl, err)
		}
	}
}

// Without a terminal on stdin, stdout or stderr, edgectl is in no
// foreground group: every signal is forwarded.
func TestNoTerminalIsNoForegroundGroup(t *testing.T) {
	r := &runner{stdin: strings.NewReader(""), stdout: os.Stderr, stderr: nil}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	r.stdout = devnull
	if r.foreground() {
		t.Fatal("foreground without a terminal")
	}
}

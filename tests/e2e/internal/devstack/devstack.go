// Package devstack runs the stack `make dev` runs (scripts/dev.sh) for the
// end-to-end suites: the three services, the stub upstream and the dev
// gateway on kong/kong.yml, against the Redis, PostgreSQL and Keycloak the
// caller gives it (here: through fault proxies, so a test can take each one
// away).
package devstack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Stack is a running dev stack.
type Stack struct {
	root, dir string
	script    string // scripts/<script> up|down
	// Env holds the env lines dev.sh printed (GATEWAY_URL, LLM_API_URL,
	// DEV_LOGS, DEV_SECRETS…).
	Env map[string]string
	// Banner is what dev.sh printed for people (URLs, the commands to try).
	Banner string
}

// Up runs `scripts/dev.sh up --detach` from the repository root with env
// added to the process environment, in dir (DEV_DIR).
func Up(ctx context.Context, root, dir string, env []string) (*Stack, error) {
	return up(ctx, root, dir, "dev.sh", []string{"up", "--detach"}, env)
}

// UpTopology starts the production shape (scripts/topology.sh up: a
// balancer, several Kong nodes, llm-api replicas) in dir, as Up does the
// dev stack; Env has topology.sh's lines too (KONG_NODE_<i>_…,
// LLM_API_<i>_…, BALANCER_URL).
func UpTopology(ctx context.Context, root, dir string, env []string) (*Stack, error) {
	return up(ctx, root, dir, "topology.sh", []string{"up"}, env)
}

func up(ctx context.Context, root, dir, script string, args, env []string) (*Stack, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", script), args...)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "DEV_DIR="+dir), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	s := &Stack{root: root, dir: dir, script: script, Env: map[string]string{}, Banner: stderr.String()}
	if err := cmd.Run(); err != nil {
		_ = s.Down()
		return nil, fmt.Errorf("scripts/%s %s: %w\n%s", script, strings.Join(args, " "), err, tail(stderr.String(), 40))
	}
	s.Banner = stderr.String()
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			s.Env[k] = v
		}
	}
	if s.Env["GATEWAY_URL"] == "" {
		_ = s.Down()
		return nil, fmt.Errorf("scripts/%s printed no GATEWAY_URL:\n%s", script, stdout.String())
	}
	return s, nil
}

// Down runs `scripts/dev.sh down` (stops the services and the gateway).
func (s *Stack) Down() error {
	cmd := exec.Command(filepath.Join(s.root, "scripts", s.script), "down")
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), "DEV_DIR="+s.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/%s down: %w: %s", s.script, err, out)
	}
	return nil
}

var tryBlock = regexp.MustCompile(`(?s)# --- try ---\n(.*?)# --- end ---`)

// TryCommands are the shell lines the banner tells a newcomer to paste.
func (s *Stack) TryCommands() string {
	m := tryBlock.FindStringSubmatch(s.Banner)
	if m == nil {
		return ""
	}
	return m[1]
}

// Dir is the stack's DEV_DIR.
func (s *Stack) Dir() string { return s.dir }

// LogFiles lists every log the stack's processes wrote.
func (s *Stack) LogFiles() ([]string, error) {
	top, err := filepath.Glob(filepath.Join(s.Env["DEV_LOGS"], "*.log"))
	if err != nil {
		return nil, err
	}
	nodes, err := filepath.Glob(filepath.Join(s.Env["DEV_LOGS"], "*", "*.log")) // the topology's other Kong nodes
	return append(top, nodes...), err
}

// SecretFiles lists the secret files the stack generated.
func (s *Stack) SecretFiles() ([]string, error) {
	return filepath.Glob(filepath.Join(s.Env["DEV_SECRETS"], "*"))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

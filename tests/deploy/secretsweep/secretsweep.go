// Package secretsweep checks the logs of a whole test run for secrets: the
// values the tests registered (pkg/testenv.RecordSecret), and anything shaped
// like a credential whatever registered it — a signed JWT (three base64url
// segments, the first two JSON objects) or an edgeguard API key whose
// checksum is valid. It reports where (file and line), never the value.
package secretsweep

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/edgeguard/edgeguard/pkg/apikey"
)

// Finding is one secret in one log line.
type Finding struct {
	File string
	Line int
	// Kind: "registered secret #<n>", "jwt" or "api key".
	Kind string
}

func (f Finding) String() string { return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Kind) }

// LoadRegistered reads every secrets-*.txt file in dir (base64 lines).
func LoadRegistered(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "secrets-*.txt"))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if line == "" {
				continue
			}
			v, err := base64.StdEncoding.DecodeString(line)
			if err != nil {
				return nil, fmt.Errorf("%s: a line is not base64", f)
			}
			if s := string(v); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out, nil
}

var (
	jwtShape = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}`)
	keyShape = regexp.MustCompile(`sk_[A-Za-z0-9_]{20,}`)
)

// Scan reads r (a log named name) line by line.
func Scan(name string, r io.Reader, secrets []string) ([]Finding, error) {
	var out []Finding
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		for i, s := range secrets {
			if bytes.Contains(line, []byte(s)) {
				out = append(out, Finding{name, n, fmt.Sprintf("registered secret #%d", i)})
			}
		}
		for _, m := range jwtShape.FindAll(line, -1) {
			if isJWT(m) {
				out = append(out, Finding{name, n, "jwt"})
			}
		}
		for _, m := range keyShape.FindAll(line, -1) {
			if _, err := apikey.Parse(string(m)); err == nil {
				out = append(out, Finding{name, n, "api key"})
			}
		}
	}
	return out, sc.Err()
}

// isJWT: the first two segments decode to JSON objects (not just any
// eyJ-prefixed text).
func isJWT(m []byte) bool {
	parts := bytes.Split(m, []byte("."))
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts[:2] {
		b, err := base64.RawURLEncoding.DecodeString(string(p))
		if err != nil || len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
			return false
		}
	}
	return true
}

// Files scans every file in paths (directories: every regular file below).
func Files(paths []string, secrets []string) ([]Finding, int, error) {
	var out []Finding
	count := 0
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			count++
			found, err := Scan(path, f, secrets)
			out = append(out, found...)
			return err
		})
		if err != nil {
			return out, count, err
		}
	}
	return out, count, nil
}

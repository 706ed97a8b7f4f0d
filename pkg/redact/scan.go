package redact

import (
	"io"
	"strings"
)

// tokenChar is the alphabet of JWS/JWE segments and API keys (base64url,
// '.' separates segments).
func tokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// minKeyBody is the shortest run after "sk_" treated as a key (edgeguard keys
// have 38 characters after the environment tag; shorter runs are prose).
const minKeyBody = 30

// apiKeyID returns "sk_[env_]<kid>" when v is an sk_ key (the public part
// an operator may see), else "".
func apiKeyID(v string) string {
	if !strings.HasPrefix(v, "sk_") {
		return ""
	}
	body := v[3:]
	n := 0
	for n < len(body) && tokenChar(body[n]) {
		n++
	}
	if n < minKeyBody {
		return ""
	}
	prefix := "sk_"
	for _, env := range []string{"live_", "test_"} {
		if strings.HasPrefix(body, env) {
			prefix += env
			body = body[len(env):]
			break
		}
	}
	if len(body) < 8 {
		return ""
	}
	return prefix + body[:8]
}

// String scrubs credential-shaped substrings from free text: every JWT or
// JWE (a run starting "eyJ" with at least two '.'-separated segments) becomes
// Mask, and every sk_ API key keeps only its key id — wherever they start,
// even glued to a preceding word (over-redaction is the safe side). It
// returns s itself when there is nothing to scrub.
func String(s string) string {
	if !strings.Contains(s, "eyJ") && !strings.Contains(s, "sk_") {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "eyJ"):
			j, dots := i, 0
			for j < len(s) && (tokenChar(s[j]) || s[j] == '.') {
				if s[j] == '.' {
					dots++
				}
				j++
			}
			if dots >= 2 {
				b.WriteString(s[last:i])
				b.WriteString(Mask)
				last, i = j, j
				continue
			}
			i = j
		case strings.HasPrefix(s[i:], "sk_"):
			j := i + 3
			for j < len(s) && tokenChar(s[j]) {
				j++
			}
			if kid := apiKeyID(s[i:j]); kid != "" {
				b.WriteString(s[last:i])
				b.WriteString(kid + "…" + Mask)
				last = j
			}
			i = j
		default:
			i++
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Writer wraps a log output (zerolog writes one line per Write) so that no
// JWT or API key can reach it, whatever a caller logged by mistake.
func Writer(w io.Writer) io.Writer { return scrubWriter{w} }

type scrubWriter struct{ w io.Writer }

func (s scrubWriter) Write(p []byte) (int, error) {
	line := string(p)
	if clean := String(line); clean != line {
		if _, err := io.WriteString(s.w, clean); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return s.w.Write(p)
}

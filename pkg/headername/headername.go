// Package headername compares and checks HTTP header names the way nginx
// and Kong treat them: case-insensitive with ASCII rules only (never Unicode
// folding — strings.EqualFold would match the Kelvin sign with "k" and let a
// spoofed header slip past a check), and, for identity headers, with '_'
// equal to '-' (CGI-style servers read X_User_ID as X-User-ID).
//
// It is not a header map: callers keep their own.
package headername

// Lower returns s with ASCII upper-case letters lowered; s itself (no
// allocation) when it has none.
func Lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + ('a' - 'A')
				}
			}
			return string(b)
		}
	}
	return s
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// EqualFold compares a and b ignoring ASCII case only.
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// fold maps a byte to the canonical comparison form: ASCII lower case, '_'
// as '-'.
func fold(c byte) byte {
	if c == '_' {
		return '-'
	}
	return lower(c)
}

// Canonical returns name in the canonical form (ASCII lower case, '_' as
// '-').
func Canonical(name string) string {
	b := []byte(name)
	for i, c := range b {
		b[i] = fold(c)
	}
	return string(b)
}

// HasCanonicalPrefix reports whether name, in canonical form, starts with
// prefix (which must already be canonical). It does not allocate.
func HasCanonicalPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if fold(name[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// EqualCanonical reports whether name, in canonical form, equals canonical.
// It does not allocate.
func EqualCanonical(name, canonical string) bool {
	return len(name) == len(canonical) && HasCanonicalPrefix(name, canonical)
}

// IsToken reports whether s is an RFC 9110 token (a valid header or cookie
// name): non-empty, at most 256 bytes here, of tchar only.
func IsToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}

package tokenin

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
)

func TestReadNormalizesOnlySurroundingWhitespaceAndOneBearer(t *testing.T) {
	const tok = "aaa.bbb.ccc"
	tests := []struct {
		name  string
		arg   string
		stdin io.Reader
		want  string
		err   error
	}{
		{name: "argument", arg: tok, want: tok},
		{name: "stdin", arg: Stdin, stdin: strings.NewReader(tok), want: tok},
		{name: "stdin with newline", arg: Stdin, stdin: strings.NewReader(tok + "\n"), want: tok},
		{name: "CRLF", arg: Stdin, stdin: strings.NewReader(tok + "\r\n"), want: tok},
		{name: "surrounding spaces and tabs", arg: " \t" + tok + " \n", want: tok},
		{name: "Bearer", arg: "Bearer " + tok, want: tok},
		{name: "BEARER, several spaces", arg: "BEARER   " + tok, want: tok},
		{name: "bearer then whitespace", arg: Stdin, stdin: strings.NewReader("  bearer " + tok + "\n"), want: tok},
		{name: "Bearer twice keeps the second", arg: "Bearer Bearer " + tok, want: "Bearer " + tok},
		{name: "Bearer with a tab is not a prefix", arg: "Bearer\t" + tok, want: "Bearer\t" + tok},
		{name: "Bearer alone is a token", arg: "Bearer ", want: "Bearer"},
		{name: "Bearerx is a token", arg: "Bearerx" + tok, want: "Bearerx" + tok},
		{name: "inner whitespace stays", arg: "aaa. bbb.ccc\n", want: "aaa. bbb.ccc"},
		{name: "NUL stays", arg: tok + "\x00", want: tok + "\x00"},
		{name: "empty argument", arg: "", err: ErrNoToken},
		{name: "empty stdin", arg: Stdin, stdin: strings.NewReader(""), err: ErrNoToken},
		{name: "whitespace stdin", arg: Stdin, stdin: strings.NewReader(" \r\n "), err: ErrNoToken},
		{name: "nil stdin", arg: Stdin, err: ErrNoToken},
		{name: "exactly MaxBytes", arg: Stdin, stdin: strings.NewReader(strings.Repeat("a", MaxBytes)), want: strings.Repeat("a", MaxBytes)},
		{name: "MaxBytes+1 on stdin", arg: Stdin, stdin: strings.NewReader(strings.Repeat("a", MaxBytes+1)), err: ErrTooLarge},
		{name: "MaxBytes+1 argument", arg: strings.Repeat("a", MaxBytes+1), err: ErrTooLarge},
		{name: "endless stdin stops at the bound", arg: Stdin, stdin: endless{}, err: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(tt.arg, tt.stdin)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Read = %.40q, %v; want %.40q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestReadErrorIsWrappedWithoutContent(t *testing.T) {
	boom := errors.New("boom")
	_, err := Read(Stdin, iotest.ErrReader(boom))
	if !errors.Is(err, boom) || errors.Is(err, ErrNoToken) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzNormalize: never panics; the result is the input minus surrounding
// whitespace and at most one "Bearer " prefix, and is never empty.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"a.b.c", " Bearer a.b.c\r\n", "bearer", "Bearer  ", "\x00", "BeArEr \t x", "", "Bearer Bearer x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Normalize(in)
		if err != nil {
			if !errors.Is(err, ErrNoToken) || strings.TrimSpace(in) != "" {
				t.Fatalf("Normalize(%q) = %v", in, err)
			}
			return
		}
		if got == "" || !strings.Contains(in, got) {
			t.Fatalf("Normalize(%q) = %q", in, got)
		}
		if strings.TrimRightFunc(got, unicode.IsSpace) != got || got[0] == ' ' {
			t.Fatalf("Normalize(%q) = %q: surrounding whitespace left", in, got)
		}
	})
}

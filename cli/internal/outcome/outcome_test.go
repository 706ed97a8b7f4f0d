package outcome

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCodeNeverZeroForAnError(t *testing.T) {
	for err, want := range map[error]int{
		nil:                                   OK,
		ErrInvalid:                            Invalid,
		fmt.Errorf("verdict: %w", ErrInvalid): Invalid,
		errors.New("unknown flag: --x"):       Usage,
		Fail(errors.New("not logged in")):     Invalid,
		fmt.Errorf("w: %w", Failf("denied")):  Invalid,
		Fail(nil):                             OK,
		&Exit{Code: 3}:                        3,
		&Exit{Code: 125, Err: Fail(errors.New("no key"))}: 125,
		fmt.Errorf("w: %w", &Exit{Code: 130}):             130,
		&Exit{Code: 0}:                                    Invalid,
		&Exit{Code: 0, Err: errors.New("x")}:              Invalid,
		&Exit{Code: 256}:                                  Invalid,
	} {
		if got := Code(err); got != want {
			t.Errorf("Code(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestVerdictWritesOneLine(t *testing.T) {
	var b strings.Builder
	if err := Verdict(&b, false, map[string]any{"valid": false, "reason": "x\n<y>"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if err := Verdict(&b, true, map[string]bool{"valid": true}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "{\"reason\":\"x\\n\\u003cy\\u003e\",\"valid\":false}\n{\"valid\":true}\n" {
		t.Fatalf("got %q", got)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed pipe") }

func TestVerdictWriteFailureIsNotValid(t *testing.T) {
	if Code(Verdict(failWriter{}, true, 1)) != Usage {
		t.Fatal("a failed write must not exit 0")
	}
}

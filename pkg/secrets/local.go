package secrets

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// File reads NAME_FILE's file: what Kubernetes and compose mount. The value
// is the file's content with surrounding whitespace trimmed. Every Lookup
// reads the file again, so a Value over it follows an atomic swap of the
// mount (Kubernetes replaces a secret volume's ..data symlink).
type File struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

var _ Backend = File{}

// Name is "file".
func (File) Name() string { return "file" }

// Where is "no NAME_FILE set".
func (File) Where(name string) string { return "no " + name + "_FILE set" }

// Lookup reads the file named by NAME_FILE. Unset is ErrNotFound; a file
// that cannot be read is an error (wrapping the file system's, e.g.
// fs.ErrNotExist), an empty one wraps ErrEmpty. Errors name the variable
// and the path, never the content.
func (f File) Lookup(_ context.Context, name string) ([]byte, error) {
	fileVar := name + "_FILE"
	path := strings.TrimSpace(f.Getenv(fileVar))
	if path == "" {
		return nil, fmt.Errorf("%s: %w", fileVar, ErrNotFound)
	}
	b, err := f.ReadFile(path)
	if err != nil {
		return nil, &fileError{msg: fmt.Sprintf("%s: cannot read %s", fileVar, path), err: err}
	}
	v := bytes.TrimSpace(b)
	if len(v) == 0 {
		return nil, &fileError{msg: fmt.Sprintf("%s: %s is empty", fileVar, path), err: ErrEmpty}
	}
	return v, nil
}

// fileError keeps the file system's error for errors.Is without printing
// it (its text is the path again).
type fileError struct {
	msg string
	err error
}

func (e *fileError) Error() string { return e.msg }
func (e *fileError) Unwrap() error { return e.err }

// Env reads NAME inline (surrounding whitespace trimmed). For development:
// pkg/envconf refuses a secret that came from it in strict mode.
type Env struct {
	Getenv func(string) string
}

var _ Backend = Env{}

// Name is "env".
func (Env) Name() string { return "env" }

// Where is "no NAME set".
func (Env) Where(name string) string { return "no " + name + " set" }

// Lookup returns NAME, or ErrNotFound when it is unset or blank.
func (e Env) Lookup(_ context.Context, name string) ([]byte, error) {
	v := strings.TrimSpace(e.Getenv(name))
	if v == "" {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return []byte(v), nil
}

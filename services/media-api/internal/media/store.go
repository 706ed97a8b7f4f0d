package media

import (
	"context"
	"errors"
	"io"
	"time"
)

// Meta describes one stored object. It is kept beside the bytes (the file
// system store writes it as a JSON sidecar).
type Meta struct {
	ID          string    `json:"id"`
	Owner       string    `json:"owner"` // the authenticated subject that uploaded it
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"` // hex, of the stored bytes
	CreatedAt   time.Time `json:"created_at"`
}

// Store keeps objects and their metadata. Implementations validate ids
// themselves (mediaid.Valid) and never build a path or key from anything
// else; an invalid id is ErrNotFound.
type Store interface {
	// Put stores the bytes of r under m.ID with m as metadata, atomically:
	// until Put returns nil nothing of the object is visible, and on error
	// nothing of it remains. It fills in Size and SHA256 and returns the
	// stored Meta. An error of r is returned wrapped (errors.Is/As find it).
	// An existing id is ErrExists.
	Put(ctx context.Context, m Meta, r io.Reader) (Meta, error)
	// Open returns the bytes and the metadata of id.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, Meta, error)
	// Stat returns the metadata of id.
	Stat(ctx context.Context, id string) (Meta, error)
	// Delete removes id (ErrNotFound when absent).
	Delete(ctx context.Context, id string) error
	// List calls fn with the metadata of every object, in no order, until
	// fn returns an error (returned as is).
	List(ctx context.Context, fn func(Meta) error) error
}

// Store errors.
var (
	ErrNotFound = errors.New("media: not found")
	ErrExists   = errors.New("media: id exists")
)

// OrphanRemover is implemented by stores that can leave debris after a
// crash (temporary files, bytes without metadata); the retention loop calls
// it with the time before which such debris is removed.
type OrphanRemover interface {
	RemoveOrphans(ctx context.Context, before time.Time) (int, error)
}

// Package fsstore is media-api's storage on a local file system: each
// object is the file <dir>/<id> with its metadata in <dir>/<id>.json, both
// written to a temporary file in the same directory, synced and renamed
// into place (the sidecar's rename is the commit point). The directory is
// created with mode 0700 and files with 0600.
//
// No path is ever built from client input: every id passes mediaid.Valid
// (jan_ + 26 base32 characters) before it names a file, and the only other
// names are fixed suffixes and the temporary files' own. It is not shared
// storage: several replicas need a shared volume or another Store.
package fsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/edgeguard/edgeguard/services/media-api/internal/mediaid"
	"github.com/edgeguard/edgeguard/services/media-api/internal/sniff"
)

const (
	metaSuffix = ".json"
	tmpPrefix  = ".tmp-"
	// MaxMetaBytes bounds what is read of a sidecar.
	MaxMetaBytes = 4 << 10
)

// ErrCorrupt: a sidecar that does not decode or does not match its object.
var ErrCorrupt = errors.New("fsstore: corrupt metadata")

// FS stores objects in one directory.
type FS struct {
	dir string
}

var (
	_ media.Store         = (*FS)(nil)
	_ media.OrphanRemover = (*FS)(nil)
)

// Open prepares dir: created with mode 0700 when missing. It reports
// whether an existing directory is readable by group or others (the caller
// logs it; a mounted volume may need its own permissions).
func Open(dir string) (*FS, bool, error) {
	if dir == "" {
		return nil, false, errors.New("fsstore: a directory is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, false, fmt.Errorf("fsstore: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, false, fmt.Errorf("fsstore: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, false, fmt.Errorf("fsstore: %w", err)
	}
	if !st.IsDir() {
		return nil, false, fmt.Errorf("fsstore: %s is not a directory", abs)
	}
	// A probe write proves the directory is writable now, not at the first
	// upload.
	f, err := os.CreateTemp(abs, tmpPrefix+"probe-")
	if err != nil {
		return nil, false, fmt.Errorf("fsstore: %s is not writable: %w", abs, err)
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return &FS{dir: abs}, st.Mode().Perm()&0o077 != 0, nil
}

// Dir is the storage directory.
func (s *FS) Dir() string { return s.dir }

func (s *FS) blobPath(id string) string { return filepath.Join(s.dir, id) }
func (s *FS) metaPath(id string) string { return filepath.Join(s.dir, id+metaSuffix) }

// Put implements media.Store.
func (s *FS) Put(ctx context.Context, m media.Meta, r io.Reader) (media.Meta, error) {
	if !mediaid.Valid(m.ID) {
		return media.Meta{}, fmt.Errorf("fsstore: invalid id")
	}
	if _, err := os.Lstat(s.metaPath(m.ID)); err == nil {
		return media.Meta{}, media.ErrExists
	}
	if _, err := os.Lstat(s.blobPath(m.ID)); err == nil {
		return media.Meta{}, media.ErrExists
	}
	h := sha256.New()
	tmp, n, err := s.writeTemp(ctx, io.TeeReader(r, h))
	if err != nil {
		return media.Meta{}, err
	}
	m.Size = n
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, s.blobPath(m.ID)); err != nil {
		_ = os.Remove(tmp)
		return media.Meta{}, fmt.Errorf("fsstore: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		_ = os.Remove(s.blobPath(m.ID))
		return media.Meta{}, fmt.Errorf("fsstore: %w", err)
	}
	mtmp, _, err := s.writeTemp(ctx, bytes.NewReader(b))
	if err == nil {
		err = os.Rename(mtmp, s.metaPath(m.ID))
		if err != nil {
			_ = os.Remove(mtmp)
		}
	}
	if err != nil {
		_ = os.Remove(s.blobPath(m.ID))
		return media.Meta{}, fmt.Errorf("fsstore: %w", err)
	}
	s.syncDir()
	return m, nil
}

// writeTemp copies r into a new temporary file (0600), synced and closed;
// on error the file is removed.
func (s *FS) writeTemp(ctx context.Context, r io.Reader) (string, int64, error) {
	f, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return "", 0, fmt.Errorf("fsstore: %w", err)
	}
	name := f.Name()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", 0, err
	}
	return name, n, nil
}

// syncDir makes the renames durable (best effort).
func (s *FS) syncDir() {
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Stat implements media.Store.
func (s *FS) Stat(_ context.Context, id string) (media.Meta, error) {
	if !mediaid.Valid(id) {
		return media.Meta{}, media.ErrNotFound
	}
	return s.readMeta(id)
}

func (s *FS) readMeta(id string) (media.Meta, error) {
	f, err := os.Open(s.metaPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return media.Meta{}, media.ErrNotFound
		}
		return media.Meta{}, fmt.Errorf("fsstore: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetaBytes+1))
	if err != nil {
		return media.Meta{}, fmt.Errorf("fsstore: %w", err)
	}
	m, err := DecodeMeta(b)
	if err != nil {
		return media.Meta{}, err
	}
	if m.ID != id {
		return media.Meta{}, fmt.Errorf("%w: id mismatch", ErrCorrupt)
	}
	return m, nil
}

// DecodeMeta decodes and checks a sidecar: one JSON object with known
// fields only, a valid id, an owner, an accepted content type, a size ≥ 0,
// a hex SHA-256 and a creation time.
func DecodeMeta(b []byte) (media.Meta, error) {
	var m media.Meta
	if len(b) > MaxMetaBytes {
		return m, fmt.Errorf("%w: too large", ErrCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return media.Meta{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return media.Meta{}, fmt.Errorf("%w: trailing data", ErrCorrupt)
	}
	sum, herr := hex.DecodeString(m.SHA256)
	switch {
	case !mediaid.Valid(m.ID), m.Owner == "", !sniff.Accepted(m.ContentType), m.Size < 0,
		herr != nil, len(sum) != sha256.Size, m.CreatedAt.IsZero():
		return media.Meta{}, fmt.Errorf("%w: invalid fields", ErrCorrupt)
	}
	return m, nil
}

// Open implements media.Store.
func (s *FS) Open(_ context.Context, id string) (io.ReadSeekCloser, media.Meta, error) {
	if !mediaid.Valid(id) {
		return nil, media.Meta{}, media.ErrNotFound
	}
	m, err := s.readMeta(id)
	if err != nil {
		return nil, media.Meta{}, err
	}
	f, err := os.Open(s.blobPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, media.Meta{}, media.ErrNotFound // deleted meanwhile
		}
		return nil, media.Meta{}, fmt.Errorf("fsstore: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != m.Size {
		_ = f.Close()
		return nil, media.Meta{}, fmt.Errorf("%w: size mismatch", ErrCorrupt)
	}
	return f, m, nil
}

// Delete implements media.Store: the sidecar goes first (the object
// disappears at once), then the bytes.
func (s *FS) Delete(_ context.Context, id string) error {
	if !mediaid.Valid(id) {
		return media.ErrNotFound
	}
	err := os.Remove(s.metaPath(id))
	berr := os.Remove(s.blobPath(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return media.ErrNotFound
	case err != nil:
		return fmt.Errorf("fsstore: %w", err)
	case berr != nil && !errors.Is(berr, fs.ErrNotExist):
		return fmt.Errorf("fsstore: %w", berr)
	}
	return nil
}

// List implements media.Store. Entries whose sidecar does not decode are
// skipped (RemoveOrphans clears them once old).
func (s *FS) List(ctx context.Context, fn func(media.Meta) error) error {
	return s.scan(ctx, func(name string, _ fs.DirEntry) error {
		id, ok := strings.CutSuffix(name, metaSuffix)
		if !ok || !mediaid.Valid(id) {
			return nil
		}
		m, err := s.readMeta(id)
		if err != nil {
			return nil // deleted meanwhile, or corrupt
		}
		return fn(m)
	})
}

// scan calls fn for every directory entry, reading the directory in
// batches.
func (s *FS) scan(ctx context.Context, fn func(name string, e fs.DirEntry) error) error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("fsstore: %w", err)
	}
	defer d.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := d.ReadDir(256)
		for _, e := range ents {
			if ferr := fn(e.Name(), e); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fsstore: %w", err)
		}
	}
}

// RemoveOrphans implements media.OrphanRemover: temporary files, bytes
// without a sidecar, and sidecars without bytes or that do not decode, all
// last modified before the given time, are removed. Unknown names are left
// alone.
func (s *FS) RemoveOrphans(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	old := func(e fs.DirEntry) bool {
		info, err := e.Info()
		return err == nil && info.ModTime().Before(before)
	}
	err := s.scan(ctx, func(name string, e fs.DirEntry) error {
		var drop bool
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			drop = old(e)
		case mediaid.Valid(name): // bytes
			_, err := os.Lstat(s.metaPath(name))
			drop = errors.Is(err, fs.ErrNotExist) && old(e)
		default:
			id, ok := strings.CutSuffix(name, metaSuffix)
			if !ok || !mediaid.Valid(id) {
				return nil
			}
			_, berr := os.Lstat(s.blobPath(id))
			_, merr := s.readMeta(id)
			drop = (errors.Is(berr, fs.ErrNotExist) || errors.Is(merr, ErrCorrupt)) && old(e)
			if drop && berr == nil {
				if os.Remove(s.blobPath(id)) == nil {
					removed++
				}
			}
		}
		if drop && os.Remove(filepath.Join(s.dir, name)) == nil {
			removed++
		}
		return nil
	})
	return removed, err
}

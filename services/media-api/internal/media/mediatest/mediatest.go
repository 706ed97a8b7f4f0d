// Package mediatest holds test helpers for media-api: the Store contract
// suite that every media.Store implementation must pass, sample image
// headers, and a store wrapper that fails on demand. Tests only.
package mediatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/edgeguard/edgeguard/services/media-api/internal/mediaid"
)

// Sample file starts (enough for sniffing).
const (
	PNG  = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
	JPEG = "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
	GIF  = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04"
	WebP = "RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00\x30\x01\x00\x9d\x01\x2a"
)

// ID returns a fresh valid id.
func ID(t testing.TB) string {
	t.Helper()
	id, err := mediaid.New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// StoreContract runs the behaviour every media.Store must have against
// stores made by newStore (a fresh, empty store per call).
func StoreContract(t *testing.T, newStore func(t *testing.T) media.Store) {
	ctx := context.Background()
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	meta := func(id string) media.Meta {
		return media.Meta{ID: id, Owner: "user-a", ContentType: "image/png", CreatedAt: created}
	}

	t.Run("PutThenStatOpenDelete", func(t *testing.T) {
		s := newStore(t)
		id := ID(t)
		body := PNG + strings.Repeat("x", 100_000)
		m, err := s.Put(ctx, meta(id), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		if m.Size != int64(len(body)) || m.SHA256 != hex.EncodeToString(sum[:]) || m.Owner != "user-a" || !m.CreatedAt.Equal(created) {
			t.Fatalf("meta %+v", m)
		}
		st, err := s.Stat(ctx, id)
		if err != nil || st != m {
			t.Fatalf("Stat = %+v, %v", st, err)
		}
		f, om, err := s.Open(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if string(got) != body || om != m {
			t.Fatal("Open returned other bytes or metadata")
		}
		if err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, id); !errors.Is(err, media.ErrNotFound) {
			t.Fatalf("Stat after Delete: %v", err)
		}
		if _, _, err := s.Open(ctx, id); !errors.Is(err, media.ErrNotFound) {
			t.Fatalf("Open after Delete: %v", err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, media.ErrNotFound) {
			t.Fatalf("second Delete: %v", err)
		}
	})

	t.Run("UnknownAndInvalidIDsAreNotFound", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{ID(t), "", "jan_../../etc/passwd", "../x", "jan_ABCDEFGHIJKLMNOPQRSTUVWXYZ", "/etc/passwd"} {
			if _, err := s.Stat(ctx, id); !errors.Is(err, media.ErrNotFound) {
				t.Errorf("Stat(%q): %v", id, err)
			}
			if _, _, err := s.Open(ctx, id); !errors.Is(err, media.ErrNotFound) {
				t.Errorf("Open(%q): %v", id, err)
			}
			if err := s.Delete(ctx, id); !errors.Is(err, media.ErrNotFound) {
				t.Errorf("Delete(%q): %v", id, err)
			}
		}
		if _, err := s.Put(ctx, meta("jan_../../../../../tmp/x"), strings.NewReader(PNG)); err == nil {
			t.Error("Put with an invalid id succeeded")
		}
	})

	t.Run("FailedPutLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		id := ID(t)
		boom := errors.New("reader broke")
		_, err := s.Put(ctx, meta(id), io.MultiReader(strings.NewReader(PNG+strings.Repeat("y", 70_000)), errReader{boom}))
		if !errors.Is(err, boom) {
			t.Fatalf("Put error %v does not wrap the reader's", err)
		}
		if _, err := s.Stat(ctx, id); !errors.Is(err, media.ErrNotFound) {
			t.Fatalf("object visible after a failed Put: %v", err)
		}
		n := 0
		_ = s.List(ctx, func(media.Meta) error { n++; return nil })
		if n != 0 {
			t.Fatalf("List shows %d objects", n)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, meta(ID(t)), strings.NewReader(PNG)); err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
	})

	t.Run("ExistingIDIsRefused", func(t *testing.T) {
		s := newStore(t)
		id := ID(t)
		if _, err := s.Put(ctx, meta(id), strings.NewReader(PNG)); err != nil {
			t.Fatal(err)
		}
		r := &countReader{r: strings.NewReader(GIF)}
		if _, err := s.Put(ctx, meta(id), r); !errors.Is(err, media.ErrExists) {
			t.Fatalf("second Put: %v", err)
		}
		if r.n != 0 {
			t.Fatal("Put read the body before refusing an existing id")
		}
		f, _, err := s.Open(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if string(got) != PNG {
			t.Fatal("existing object overwritten")
		}
	})

	t.Run("ListSeesEveryObject", func(t *testing.T) {
		s := newStore(t)
		var want []string
		for range 140 { // 280 entries: more than one ReadDir batch
			id := ID(t)
			want = append(want, id)
			if _, err := s.Put(ctx, meta(id), strings.NewReader(PNG)); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		if err := s.List(ctx, func(m media.Meta) error { got = append(got, m.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("List saw %d of %d", len(got), len(want))
		}
		stop := errors.New("stop")
		calls := 0
		if err := s.List(ctx, func(media.Meta) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("List did not stop: %v after %d calls", err, calls)
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				body := bytes.Repeat([]byte{byte(i)}, 50_000)
				_, err := s.Put(ctx, meta(ID(t)), io.MultiReader(strings.NewReader(PNG), bytes.NewReader(body)))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FailingStore wraps a Store; while Fail is set, every call fails with Err
// (a storage outage).
type FailingStore struct {
	media.Store
	mu   sync.Mutex
	fail bool
	Err  error
}

// SetFail switches the outage on or off.
func (f *FailingStore) SetFail(on bool) { f.mu.Lock(); f.fail = on; f.mu.Unlock() }

func (f *FailingStore) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.fail {
		return nil
	}
	if f.Err != nil {
		return f.Err
	}
	return errors.New("disk on fire")
}

// Put implements media.Store.
func (f *FailingStore) Put(ctx context.Context, m media.Meta, r io.Reader) (media.Meta, error) {
	if err := f.err(); err != nil {
		return media.Meta{}, err
	}
	return f.Store.Put(ctx, m, r)
}

// Open implements media.Store.
func (f *FailingStore) Open(ctx context.Context, id string) (io.ReadSeekCloser, media.Meta, error) {
	if err := f.err(); err != nil {
		return nil, media.Meta{}, err
	}
	return f.Store.Open(ctx, id)
}

// Stat implements media.Store.
func (f *FailingStore) Stat(ctx context.Context, id string) (media.Meta, error) {
	if err := f.err(); err != nil {
		return media.Meta{}, err
	}
	return f.Store.Stat(ctx, id)
}

// Delete implements media.Store.
func (f *FailingStore) Delete(ctx context.Context, id string) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, id)
}

// List implements media.Store.
func (f *FailingStore) List(ctx context.Context, fn func(media.Meta) error) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.List(ctx, fn)
}

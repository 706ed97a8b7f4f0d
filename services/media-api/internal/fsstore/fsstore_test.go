package fsstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media/mediatest"
)

func newFS(t *testing.T) *FS {
	t.Helper()
	s, _, err := Open(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreContract(t *testing.T) {
	mediatest.StoreContract(t, func(t *testing.T) media.Store { return newFS(t) })
}

func TestDirectoryAndFilesArePrivate(t *testing.T) {
	s := newFS(t)
	st, err := os.Stat(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %o", st.Mode().Perm())
	}
	id := mediatest.ID(t)
	if _, err := s.Put(context.Background(), media.Meta{ID: id, Owner: "a", ContentType: "image/png", CreatedAt: time.Now()},
		strings.NewReader(mediatest.PNG)); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.Dir())
	var names []string
	for _, e := range ents {
		info, _ := e.Info()
		names = append(names, e.Name())
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", e.Name(), info.Mode().Perm())
		}
	}
	if strings.Join(names, ",") != id+","+id+".json" {
		t.Fatalf("directory holds %v", names)
	}
}

func TestOpenReportsAnExistingOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, wide, err := Open(dir)
	if err != nil || !wide {
		t.Fatalf("wide = %v, err %v", wide, err)
	}
	f := filepath.Join(dir, "file")
	_ = os.WriteFile(f, nil, 0o600)
	if _, _, err := Open(f); err == nil {
		t.Fatal("a file accepted as directory")
	}
	if _, _, err := Open(""); err == nil {
		t.Fatal("empty dir accepted")
	}
}

func TestCorruptSidecarsAreErrors(t *testing.T) {
	s := newFS(t)
	ctx := context.Background()
	id := mediatest.ID(t)
	m, err := s.Put(ctx, media.Meta{ID: id, Owner: "a", ContentType: "image/png", CreatedAt: time.Now()}, strings.NewReader(mediatest.PNG))
	if err != nil {
		t.Fatal(err)
	}
	_ = m
	for _, body := range []string{"", "{", `{"id":"` + id + `"}`, `{"id":"` + mediatest.ID(t) + `","owner":"a","content_type":"image/png","size":1,"sha256":"` + strings.Repeat("0", 64) + `","created_at":"2030-01-01T00:00:00Z"}`,
		strings.Repeat(" ", MaxMetaBytes+10)} {
		if err := os.WriteFile(filepath.Join(s.Dir(), id+".json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, id); !errors.Is(err, ErrCorrupt) {
			t.Errorf("sidecar %.30q: %v", body, err)
		}
	}
}

func TestSizeMismatchIsCorrupt(t *testing.T) {
	s := newFS(t)
	ctx := context.Background()
	id := mediatest.ID(t)
	if _, err := s.Put(ctx, media.Meta{ID: id, Owner: "a", ContentType: "image/png", CreatedAt: time.Now()}, strings.NewReader(mediatest.PNG)); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(s.Dir(), id), []byte("short"), 0o600)
	if _, _, err := s.Open(ctx, id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v", err)
	}
}

func TestRemoveOrphansClearsOldDebrisOnly(t *testing.T) {
	s := newFS(t)
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)
	write := func(name string, age time.Time) {
		p := filepath.Join(s.Dir(), name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, age, age)
	}
	kept := mediatest.ID(t)
	if _, err := s.Put(ctx, media.Meta{ID: kept, Owner: "a", ContentType: "image/png", CreatedAt: time.Now()}, strings.NewReader(mediatest.PNG)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{kept, kept + ".json"} {
		_ = os.Chtimes(filepath.Join(s.Dir(), n), old, old)
	}
	orphanBlob, orphanMeta, fresh := mediatest.ID(t), mediatest.ID(t), mediatest.ID(t)
	write(".tmp-123", old)
	write(".tmp-456", time.Now()) // an upload in progress
	write(orphanBlob, old)
	write(orphanMeta+".json", old)
	write(fresh, time.Now()) // its sidecar is about to be written
	write("README", old)     // not ours
	n, err := s.RemoveOrphans(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("removed %d, want 3", n)
	}
	for _, name := range []string{".tmp-456", fresh, "README", kept, kept + ".json"} {
		if _, err := os.Stat(filepath.Join(s.Dir(), name)); err != nil {
			t.Errorf("%s removed", name)
		}
	}
	for _, name := range []string{".tmp-123", orphanBlob, orphanMeta + ".json"} {
		if _, err := os.Stat(filepath.Join(s.Dir(), name)); err == nil {
			t.Errorf("%s kept", name)
		}
	}
}

// FuzzDecodeMeta: whatever decodes is a valid sidecar.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"id":"jan_abcdefghijklmnopqrstuvwxyz","owner":"a","content_type":"image/png","size":1,"sha256":"` + strings.Repeat("ab", 32) + `","created_at":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"id":"jan_../../x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if m.Owner == "" || m.Size < 0 || len(m.SHA256) != 64 || strings.ContainsAny(m.ID, "/.") {
			t.Fatalf("accepted %+v", m)
		}
	})
}

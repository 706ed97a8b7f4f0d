package edgeassert

import (
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginlog"
)

// KeyCheckInterval is how often a signing key file is checked for a change
// (a rotation: Kubernetes swaps a secret volume's symlink, an operator
// renames a new file over the old one). The new key applies without a
// restart of the plugin server; until then the previous key signs, which the
// services accept while their JWKS holds both keys.
var KeyCheckInterval = 10 * time.Second

// keyFile is the current signer of one edge_signing_key_file, shared by
// every instance that names the path (process-level, like the JWKS caches:
// Kong creates a new instance on every configuration change).
type keyFile struct {
	path string
	log  zerolog.Logger
	cur  atomic.Pointer[edgeid.Signer]

	mu      sync.Mutex // check
	info    os.FileInfo
	failing bool
}

var keyFiles = struct {
	sync.Mutex
	m map[string]*keyFile
}{m: map[string]*keyFile{}}

// loadKeyFile returns the path's keyFile, loading the key on first use and
// starting its watcher. A key that cannot be loaded is an error and is not
// remembered (a fixed file works on the next instance).
func loadKeyFile(path string) (*keyFile, error) {
	keyFiles.Lock()
	defer keyFiles.Unlock()
	if kf := keyFiles.m[path]; kf != nil {
		return kf, nil
	}
	info, _ := os.Stat(path)
	s, err := edgeid.LoadSigner(path)
	if err != nil {
		return nil, err
	}
	kf := &keyFile{path: path, info: info, log: pluginlog.New("edge-identity")}
	kf.cur.Store(s)
	keyFiles.m[path] = kf
	go kf.watch()
	return kf, nil
}

func (kf *keyFile) watch() {
	t := time.NewTicker(KeyCheckInterval)
	defer t.Stop()
	for range t.C {
		kf.check()
	}
}

// check loads the key again when the file (after symlinks) changed: another
// file, size or modification time. A file that cannot be loaded keeps the
// current key and is logged once until it loads again.
func (kf *keyFile) check() {
	kf.mu.Lock()
	defer kf.mu.Unlock()
	info, err := os.Stat(kf.path)
	if err == nil && kf.info != nil && os.SameFile(info, kf.info) && info.Size() == kf.info.Size() && info.ModTime().Equal(kf.info.ModTime()) {
		return
	}
	s, lerr := edgeid.LoadSigner(kf.path)
	if err != nil || lerr != nil {
		if !kf.failing {
			e := lerr
			if e == nil {
				e = err
			}
			kf.log.Error().Str("option", "edge_signing_key_file").Err(e).Msg("cannot load the changed signing key: the current key keeps signing")
		}
		kf.failing = true
		return
	}
	kf.info, kf.failing = info, false
	if old := kf.cur.Load(); old.KID() != s.KID() {
		kf.cur.Store(s)
		kf.log.Info().Str("option", "edge_signing_key_file").Str("kid", s.KID()).Str("previous_kid", old.KID()).Msg("edge signing key rotated")
	}
}

package credstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// FileInfo describes one file or directory of the store (never its content).
type FileInfo struct {
	Path   string      `json:"path"`
	Exists bool        `json:"exists"`
	Mode   fs.FileMode `json:"-"`
	Perm   string      `json:"mode,omitempty"` // e.g. "0600"
	Size   int64       `json:"size,omitempty"`
}

// Info is what the store knows about one server, for `edgectl doctor`:
// where things are and in what state, never a key or a token.
type Info struct {
	Dir         FileInfo `json:"config_dir"`
	CredDir     FileInfo `json:"credentials_dir"`
	Credentials FileInfo `json:"credentials_file"`
	KeyFile     FileInfo `json:"key_file"`

	Mode Mode `json:"keyring_mode"`
	// KeyStore is where the data key of the credentials is: "keyring",
	// "file", or "" when there are no credentials.
	KeyStore string `json:"key_store,omitempty"`
	// KeyringAvailable and KeyringReason: whether the OS keyring is
	// usable, and why not.
	KeyringAvailable bool   `json:"keyring_available"`
	KeyringReason    string `json:"keyring_unavailable_reason,omitempty"`
	KeyringService   string `json:"keyring_service"`
	KeyringUser      string `json:"keyring_user"`
	// KeyID names the data key the file needs (not secret).
	KeyID string `json:"key_id,omitempty"`
	// Problem is why the credentials do not load ("" when they do or
	// there are none).
	Problem string `json:"problem,omitempty"`
}

func stat(p string) FileInfo {
	fi := FileInfo{Path: p}
	st, err := os.Stat(p)
	if err != nil {
		return fi
	}
	fi.Exists, fi.Mode = true, st.Mode()
	fi.Perm = fmt.Sprintf("%04o", st.Mode().Perm())
	if !st.IsDir() {
		fi.Size = st.Size()
	}
	return fi
}

// Inspect reports on server's credentials and key without changing
// anything. It returns the loaded credentials too (nil when they do not
// load), so that a caller can describe them.
func (s *Store) Inspect(server string) (Info, *Credentials) {
	in := Info{
		Dir: stat(s.dir), CredDir: stat(s.CredDir()),
		Credentials: stat(s.Path(server)), KeyFile: stat(s.KeyPath(server)),
		Mode: s.mode,
	}
	in.KeyringService, in.KeyringUser = KeyringItem(server)
	if _, err := s.Keyring(); err != nil {
		in.KeyringReason = strings.TrimPrefix(err.Error(), ErrKeyringUnavailable.Error()+": ")
	} else {
		in.KeyringAvailable = true
	}
	if !in.Credentials.Exists {
		return in, nil
	}
	if e, err := s.envelope(server); err == nil {
		in.KeyStore, in.KeyID = e.KeyStore, e.KeyID
	}
	c, err := s.Load(server)
	if err != nil && !errors.Is(err, ErrNotFound) {
		in.Problem = err.Error()
	}
	return in, c
}

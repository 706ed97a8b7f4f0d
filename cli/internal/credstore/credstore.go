// Package credstore keeps edgectl's credentials on disk: one file per server
// URL under the user's config directory
// (<UserConfigDir>/edgeguard/credentials/<sha256(server)>.json, mode 0600,
// directory 0700), encrypted with AES-256-GCM (a random 96-bit nonce per
// write, the server URL as additional data) under a random 32-byte data key
// per server. The data key lives in the OS keyring when one is usable
// (github.com/zalando/go-keyring), else in a 0600 key file beside the
// credentials (<sha256(server)>.key). Writes are atomic (temporary file,
// fsync, rename).
//
// The file never holds a token in clear, and it decrypts only with its key:
// a missing key, another key or a modified file are distinct errors
// (ErrKeyMissing, ErrWrongKey, ErrCorrupt), never a panic. Key rotation
// re-encrypts under a new key without a window in which a crash would lose
// the credentials.
//
// It is not a session manager: it does not know what the tokens mean,
// refresh them or verify them (package session does).
package credstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// Format and bounds.
const (
	FormatVersion = 1
	Algorithm     = "A256GCM"
	// MaxFileBytes bounds what is read of a credential or key file.
	MaxFileBytes   = 1 << 20
	keyringService = "edgeguard-edgectl"
	keyBytes       = 32
	nonceBytes     = 12
)

// Where a data key lives (Envelope.KeyStore, Info.KeyStore).
const (
	StoreKeyring = "keyring"
	StoreFile    = "file"
)

// Mode says where new data keys go.
type Mode string

// Modes (EDGEGUARD_KEYRING).
const (
	ModeAuto    Mode = "auto"    // the OS keyring when usable, else the key file
	ModeFile    Mode = "file"    // always the key file
	ModeKeyring Mode = "keyring" // the OS keyring, or fail
)

// ParseMode parses EDGEGUARD_KEYRING ("" is auto).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeFile, ModeKeyring:
		return Mode(s), nil
	}
	return "", fmt.Errorf("EDGEGUARD_KEYRING=%q: want auto, file or keyring", trunc(s, 40))
}

// Sentinel errors.
var (
	ErrNotFound = errors.New("no stored credentials")
	// ErrKeyMissing: the credentials exist but their data key does not
	// (keyring item or key file gone, or the keyring unreachable).
	ErrKeyMissing = errors.New("the data key of the stored credentials is missing")
	// ErrWrongKey: a data key is there, but not the one the file was
	// encrypted with.
	ErrWrongKey = errors.New("the stored credentials were encrypted with another key")
	// ErrCorrupt: the file is not a credential file of this format, or it
	// does not decrypt and authenticate with its key (modified or damaged).
	ErrCorrupt = errors.New("the stored credentials are corrupted")
	// ErrInsecureKeyFile: the key file is readable or writable by others.
	ErrInsecureKeyFile = errors.New("the key file is accessible to other users")
)

// Secret is a string that prints as [redacted] (fmt %s, %v, %#v); JSON
// encodes it as is, for the encrypted file only.
type Secret string

// String implements fmt.Stringer without revealing the value.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the value.
func (Secret) GoString() string { return "[redacted]" }

// Credentials are what a login leaves behind for one server.
type Credentials struct {
	Server   string `json:"server"`
	Realm    string `json:"realm"`
	ClientID string `json:"client_id"`

	// Discovered endpoints (refresh and revocation need no discovery).
	Issuer             string `json:"issuer"`
	TokenEndpoint      string `json:"token_endpoint"`
	RevocationEndpoint string `json:"revocation_endpoint,omitempty"`
	JWKSURI            string `json:"jwks_uri"`

	AccessToken      Secret    `json:"access_token"`
	RefreshToken     Secret    `json:"refresh_token,omitempty"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`

	// DPoPKey is the session's DPoP private key (RFC 9449; PKCS#8 DER,
	// base64) when its tokens are bound to it: every token, refresh and API
	// request then carries a proof of it. Empty for a bearer session.
	DPoPKey Secret `json:"dpop_key,omitempty"`

	// Identity is the verified identity of AccessToken (pkg/jwtauth).
	Identity identity.Identity `json:"identity"`
	SavedAt  time.Time         `json:"saved_at"`
}

// Envelope is the on-disk form of a credential file.
type Envelope struct {
	Format     int    `json:"edgeguard_credentials"`
	Server     string `json:"server"`
	KeyStore   string `json:"key_store"`
	KeyID      string `json:"key_id"`
	Alg        string `json:"alg"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// Options configure a Store.
type Options struct {
	// Dir is edgectl's config directory; credentials go to Dir/credentials.
	Dir  string
	Mode Mode
	// Keyring is the OS keyring; nil means SystemKeyring() (probed once,
	// only when needed and Mode is not file).
	Keyring Keyring
	Rand    io.Reader // nil: crypto/rand
}

// Store is the credential store of one config directory.
type Store struct {
	dir  string
	mode Mode
	rand io.Reader

	ringOnce sync.Once
	ring     Keyring
	ringErr  error
}

// DefaultDir is <os.UserConfigDir()>/edgeguard.
func DefaultDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no user config directory: %w", err)
	}
	return filepath.Join(d, "edgeguard"), nil
}

// New returns a Store; it does no I/O.
func New(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("credstore: no directory")
	}
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return nil, err
	}
	s := &Store{dir: o.Dir, mode: o.Mode, rand: o.Rand, ring: o.Keyring}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.mode == ModeFile {
		s.ringErr = fmt.Errorf("%w: EDGEGUARD_KEYRING=file", ErrKeyringUnavailable)
		s.ring = nil
		s.ringOnce.Do(func() {})
	} else if s.ring != nil {
		s.ringOnce.Do(func() {})
	}
	return s, nil
}

// Keyring returns the OS keyring, or why there is none.
func (s *Store) Keyring() (Keyring, error) {
	s.ringOnce.Do(func() { s.ring, s.ringErr = SystemKeyring() })
	return s.ring, s.ringErr
}

// Mode is where new data keys go.
func (s *Store) Mode() Mode { return s.mode }

// Dir is the config directory.
func (s *Store) Dir() string { return s.dir }

// CredDir is the directory of the credential and key files.
func (s *Store) CredDir() string { return filepath.Join(s.dir, "credentials") }

// ID is the file name stem of a server: hex SHA-256 of its URL.
func ID(server string) string {
	h := sha256.Sum256([]byte(server))
	return hex.EncodeToString(h[:])
}

// Path is the credential file of server.
func (s *Store) Path(server string) string { return filepath.Join(s.CredDir(), ID(server)+".json") }

// KeyPath is the key file of server (used when there is no OS keyring).
func (s *Store) KeyPath(server string) string { return filepath.Join(s.CredDir(), ID(server)+".key") }

// KeyringItem is the service and user name of server's data key in the OS
// keyring.
func KeyringItem(server string) (service, user string) { return keyringService, ID(server) }

// KeyID names a data key without revealing it: the first 16 hex digits of
// a domain-separated SHA-256.
func KeyID(key []byte) string {
	h := sha256.Sum256(append([]byte("edgeguard data key id\x00"), key...))
	return hex.EncodeToString(h[:8])
}

// keySet is the content of a keyring item or key file: the current key
// first; during a rotation the previous one too.
type keySet struct {
	V    int       `json:"v"`
	Keys []dataKey `json:"keys"`
}

type dataKey struct {
	ID  string `json:"id"`
	Key []byte `json:"key"`
}

func (k keySet) find(id string) []byte {
	for _, d := range k.Keys {
		if d.ID == id {
			return d.Key
		}
	}
	return nil
}

func (k keySet) ids() []string {
	out := make([]string, len(k.Keys))
	for i, d := range k.Keys {
		out[i] = d.ID
	}
	return out
}

var keyIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

func parseKeySet(b []byte) (keySet, error) {
	var k keySet
	if err := strictJSON(b, &k); err != nil || k.V != 1 || len(k.Keys) == 0 || len(k.Keys) > 4 {
		return keySet{}, fmt.Errorf("%w: the key store's entry is not a key set", ErrCorrupt)
	}
	for _, d := range k.Keys {
		if len(d.Key) != keyBytes || d.ID != KeyID(d.Key) {
			return keySet{}, fmt.Errorf("%w: the key store's entry holds a damaged key", ErrCorrupt)
		}
	}
	return k, nil
}

func (s *Store) newKey() (dataKey, error) {
	k := make([]byte, keyBytes)
	if _, err := io.ReadFull(s.rand, k); err != nil {
		return dataKey{}, fmt.Errorf("generating a data key: %w", err)
	}
	return dataKey{ID: KeyID(k), Key: k}, nil
}

// ParseEnvelope parses a credential file without decrypting it.
func ParseEnvelope(raw []byte) (*Envelope, error) {
	if len(raw) > MaxFileBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxFileBytes)
	}
	var e Envelope
	if err := strictJSON(raw, &e); err != nil {
		return nil, fmt.Errorf("%w: not a credential file (%v)", ErrCorrupt, err)
	}
	switch {
	case e.Format != FormatVersion:
		return nil, fmt.Errorf("%w: unknown format %d", ErrCorrupt, e.Format)
	case e.Alg != Algorithm:
		return nil, fmt.Errorf("%w: unknown algorithm", ErrCorrupt)
	case e.KeyStore != StoreKeyring && e.KeyStore != StoreFile:
		return nil, fmt.Errorf("%w: unknown key store", ErrCorrupt)
	case !keyIDPattern.MatchString(e.KeyID):
		return nil, fmt.Errorf("%w: bad key id", ErrCorrupt)
	case len(e.Nonce) != nonceBytes:
		return nil, fmt.Errorf("%w: bad nonce", ErrCorrupt)
	case len(e.Ciphertext) < 16:
		return nil, fmt.Errorf("%w: ciphertext too short", ErrCorrupt)
	}
	return &e, nil
}

// Seal encrypts c under key for server (the additional data), recording
// where the key lives.
func Seal(rnd io.Reader, server, keyStore string, key []byte, c *Credentials) ([]byte, error) {
	if len(key) != keyBytes {
		return nil, errors.New("credstore: data key must be 32 bytes")
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding credentials: %w", err)
	}
	defer clear(plain)
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceBytes)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("generating a nonce: %w", err)
	}
	e := Envelope{
		Format: FormatVersion, Server: server, KeyStore: keyStore, KeyID: KeyID(key), Alg: Algorithm,
		Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plain, []byte(server)),
	}
	out, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the credential file: %w", err)
	}
	return append(out, '\n'), nil
}

// Open decrypts an envelope of server with key (which must be the one named
// by e.KeyID).
func Open(e *Envelope, server string, key []byte) (*Credentials, error) {
	if e.Server != server {
		return nil, fmt.Errorf("%w: the file belongs to another server", ErrCorrupt)
	}
	if key == nil || KeyID(key) != e.KeyID {
		return nil, ErrWrongKey
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, e.Nonce, e.Ciphertext, []byte(server))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not decrypt with its key (modified or damaged)", ErrCorrupt)
	}
	defer clear(plain)
	var c Credentials
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("%w: decrypted content is not credentials", ErrCorrupt)
	}
	if c.Server != server || c.AccessToken == "" {
		return nil, fmt.Errorf("%w: decrypted content is incomplete", ErrCorrupt)
	}
	return &c, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	return cipher.NewGCM(b)
}

// Decode reads a credential file's bytes for server with key: ParseEnvelope
// then Open. It is the whole reader of the format (and its fuzz target).
func Decode(raw []byte, server string, key []byte) (*Credentials, error) {
	e, err := ParseEnvelope(raw)
	if err != nil {
		return nil, err
	}
	return Open(e, server, key)
}

// Load returns the credentials of server: ErrNotFound when there are none.
func (s *Store) Load(server string) (*Credentials, error) {
	c, _, err := s.load(server)
	return c, err
}

func (s *Store) load(server string) (*Credentials, keySet, error) {
	e, err := s.envelope(server)
	if err != nil {
		return nil, keySet{}, err
	}
	ks, err := s.readKeys(server, e.KeyStore)
	if err != nil {
		return nil, keySet{}, err
	}
	key := ks.find(e.KeyID)
	if key == nil {
		return nil, keySet{}, fmt.Errorf("%w: the file needs key %s, the %s holds %v; log in again (edgectl login)",
			ErrWrongKey, e.KeyID, storeName(e.KeyStore), ks.ids())
	}
	c, err := Open(e, server, key)
	if err != nil {
		return nil, keySet{}, fmt.Errorf("%s: %w; log in again (edgectl login)", s.Path(server), err)
	}
	return c, ks, nil
}

func storeName(where string) string {
	if where == StoreKeyring {
		return "OS keyring"
	}
	return "key file"
}

func (s *Store) envelope(server string) (*Envelope, error) {
	raw, err := readBounded(s.Path(server))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	e, err := ParseEnvelope(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; log in again (edgectl login)", s.Path(server), err)
	}
	return e, nil
}

// readKeys reads server's key set from where ("keyring" or "file").
func (s *Store) readKeys(server, where string) (keySet, error) {
	var raw []byte
	switch where {
	case StoreKeyring:
		ring, err := s.Keyring()
		if err != nil {
			return keySet{}, fmt.Errorf("%w: it is in the OS keyring: %v", ErrKeyMissing, err)
		}
		svc, user := KeyringItem(server)
		v, err := ring.Get(svc, user)
		if errors.Is(err, ErrKeyNotFound) {
			return keySet{}, fmt.Errorf("%w: no keyring item %s/%s; log in again (edgectl login)", ErrKeyMissing, svc, user)
		}
		if err != nil {
			return keySet{}, fmt.Errorf("%w: %v", ErrKeyMissing, err)
		}
		raw = []byte(v)
	default:
		p := s.KeyPath(server)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return keySet{}, fmt.Errorf("%w: no key file %s; log in again (edgectl login)", ErrKeyMissing, p)
		}
		if err != nil {
			return keySet{}, fmt.Errorf("%w: %v", ErrKeyMissing, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return keySet{}, fmt.Errorf("%w: %s has mode %04o (chmod 600 it, or log in again)", ErrInsecureKeyFile, p, fi.Mode().Perm())
		}
		if raw, err = readBounded(p); err != nil {
			return keySet{}, fmt.Errorf("%w: %v", ErrKeyMissing, err)
		}
	}
	ks, err := parseKeySet(raw)
	clear(raw)
	return ks, err
}

func (s *Store) writeKeys(server, where string, ks keySet) error {
	b, err := json.Marshal(ks)
	if err != nil {
		return err
	}
	defer clear(b)
	if where == StoreKeyring {
		ring, err := s.Keyring()
		if err != nil {
			return err
		}
		svc, user := KeyringItem(server)
		return ring.Set(svc, user, string(b))
	}
	return s.writeFile(s.KeyPath(server), b)
}

// newKeyLocation is where a new data key of server goes.
func (s *Store) newKeyLocation() (string, error) {
	switch s.mode {
	case ModeFile:
		return StoreFile, nil
	case ModeKeyring:
		if _, err := s.Keyring(); err != nil {
			return "", fmt.Errorf("EDGEGUARD_KEYRING=keyring: %w", err)
		}
		return StoreKeyring, nil
	}
	if _, err := s.Keyring(); err != nil {
		return StoreFile, nil
	}
	return StoreKeyring, nil
}

// Save encrypts and writes c (c.Server names the file). An existing key of
// the server is reused when it still reads; otherwise a new one is made
// where Mode says.
func (s *Store) Save(c *Credentials) error {
	if c.Server == "" || c.AccessToken == "" {
		return errors.New("credstore: credentials without server or access token")
	}
	if err := s.ensureDir(); err != nil {
		return err
	}
	where, key, err := s.keyForWrite(c.Server)
	if err != nil {
		return err
	}
	out, err := Seal(s.rand, c.Server, where, key, c)
	if err != nil {
		return err
	}
	return s.writeFile(s.Path(c.Server), out)
}

// keyForWrite returns the current key of server (from where its file says,
// else where Mode says), creating it when there is none usable.
func (s *Store) keyForWrite(server string) (string, []byte, error) {
	if e, err := s.envelope(server); err == nil {
		if ks, err := s.readKeys(server, e.KeyStore); err == nil {
			return e.KeyStore, ks.Keys[0].Key, nil
		}
	}
	where, err := s.newKeyLocation()
	if err != nil {
		return "", nil, err
	}
	if ks, err := s.readKeys(server, where); err == nil {
		return where, ks.Keys[0].Key, nil
	}
	k, err := s.newKey()
	if err != nil {
		return "", nil, err
	}
	if err := s.writeKeys(server, where, keySet{V: 1, Keys: []dataKey{k}}); err != nil {
		if where == StoreKeyring && s.mode == ModeAuto {
			// The keyring answered the probe but refuses to store: fall back.
			where = StoreFile
			if err := s.writeKeys(server, where, keySet{V: 1, Keys: []dataKey{k}}); err != nil {
				return "", nil, fmt.Errorf("storing the data key: %w", err)
			}
			return where, k.Key, nil
		}
		return "", nil, fmt.Errorf("storing the data key: %w", err)
	}
	return where, k.Key, nil
}

// Rotation is what RotateKey did.
type Rotation struct {
	KeyStore string
	OldKeyID string
	NewKeyID string
}

// RotateKey re-encrypts server's credentials under a new data key: the new
// key is added beside the old one, the file is rewritten, then the old key
// is dropped. A crash at any point leaves a file whose key is in the store.
func (s *Store) RotateKey(server string) (Rotation, error) {
	c, ks, err := s.load(server)
	if err != nil {
		return Rotation{}, err
	}
	e, err := s.envelope(server)
	if err != nil {
		return Rotation{}, err
	}
	nk, err := s.newKey()
	if err != nil {
		return Rotation{}, err
	}
	old := ks.find(e.KeyID)
	both := keySet{V: 1, Keys: []dataKey{nk, {ID: e.KeyID, Key: old}}}
	if err := s.writeKeys(server, e.KeyStore, both); err != nil {
		return Rotation{}, fmt.Errorf("storing the new key: %w", err)
	}
	out, err := Seal(s.rand, server, e.KeyStore, nk.Key, c)
	if err != nil {
		return Rotation{}, err
	}
	if err := s.writeFile(s.Path(server), out); err != nil {
		return Rotation{}, err
	}
	if err := s.writeKeys(server, e.KeyStore, keySet{V: 1, Keys: []dataKey{nk}}); err != nil {
		return Rotation{}, fmt.Errorf("dropping the old key: %w", err)
	}
	return Rotation{KeyStore: e.KeyStore, OldKeyID: e.KeyID, NewKeyID: nk.ID}, nil
}

// Delete removes server's credentials and data key (wherever it is). It is
// not an error when there is nothing to delete.
func (s *Store) Delete(server string) error {
	var errs []error
	for _, p := range []string{s.Path(server), s.KeyPath(server)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if s.mode != ModeFile {
		if ring, err := s.Keyring(); err == nil {
			svc, user := KeyringItem(server)
			if err := ring.Delete(svc, user); err != nil && !errors.Is(err, ErrKeyNotFound) {
				errs = append(errs, fmt.Errorf("deleting the keyring item: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// ensureDir creates Dir and CredDir with mode 0700 (and tightens CredDir
// when it exists with a wider mode).
func (s *Store) ensureDir() error {
	if err := os.MkdirAll(s.CredDir(), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", s.CredDir(), err)
	}
	for _, d := range []string{s.dir, s.CredDir()} {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o700 {
			if err := os.Chmod(d, 0o700); err != nil {
				return fmt.Errorf("chmod 700 %s: %w", d, err)
			}
		}
	}
	return nil
}

// writeFile writes b to p atomically with mode 0600: a temporary file in the
// same directory, fsync, rename, fsync of the directory.
func (s *Store) writeFile(p string, b []byte) error {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, p, MaxFileBytes)
	}
	return b, nil
}

// strictJSON decodes exactly one JSON object with known fields only.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %s has the wrong type", te.Field)
		}
		return errors.New("not a JSON object of the expected fields")
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// defaults is the small non-secret settings file (the server of the last
// login), Dir/edgectl.json.
type defaults struct {
	Server string `json:"server"`
}

func (s *Store) defaultsPath() string { return filepath.Join(s.dir, "edgectl.json") }

// DefaultServer is the server of the last login ("" when none).
func (s *Store) DefaultServer() (string, error) {
	b, err := readBounded(s.defaultsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var d defaults
	if err := strictJSON(b, &d); err != nil {
		return "", fmt.Errorf("%s: %v", s.defaultsPath(), err)
	}
	return d.Server, nil
}

// SetDefaultServer records server as the one to use without --server.
func (s *Store) SetDefaultServer(server string) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	b, _ := json.Marshal(defaults{Server: server})
	return s.writeFile(s.defaultsPath(), append(b, '\n'))
}

// ClearDefaultServer forgets the default server if it is server.
func (s *Store) ClearDefaultServer(server string) error {
	if d, err := s.DefaultServer(); err != nil || d != server {
		return nil
	}
	if err := os.Remove(s.defaultsPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

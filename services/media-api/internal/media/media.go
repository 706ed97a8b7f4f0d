// Package media holds media-api's rules: an upload is accepted only when its
// first bytes are a JPEG, PNG, GIF or WebP (the client's Content-Type is
// never believed) and it fits MaxBytes, counted while it streams; it gets a
// fresh random id and belongs to the authenticated subject that sent it;
// only that owner sees, signs a download URL for, or deletes it — to anyone
// else it does not exist; a download needs a signed, unexpired URL; and
// objects older than the retention period are gone (Sweep).
//
// Remote ingest (Fetch) goes through an ssrf-guarded client only.
//
// It knows nothing of HTTP routing or JSON: package server maps its errors
// to answers. The Store it consumes is declared in store.go.
package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edgeguard/edgeguard/pkg/ssrf"
	"github.com/edgeguard/edgeguard/services/media-api/internal/mediaid"
	"github.com/edgeguard/edgeguard/services/media-api/internal/signedurl"
	"github.com/edgeguard/edgeguard/services/media-api/internal/sniff"
	"github.com/rs/zerolog"
)

// Rejections (bad input); anything else a Service returns is a failure of
// storage or of the process.
var (
	ErrTooLarge        = errors.New("media: larger than the size limit")
	ErrEmpty           = errors.New("media: empty")
	ErrUnsupportedType = errors.New("media: not a jpeg, png, gif or webp image")
	// ErrBody: the request body could not be read to its end (a client
	// that went away, a truncated multipart body). Wrapped with the cause.
	ErrBody          = errors.New("media: request body unreadable")
	ErrURLInvalid    = errors.New("media: download url invalid")
	ErrURLExpired    = errors.New("media: download url expired")
	ErrFetchDisabled = errors.New("media: remote fetch disabled")
	ErrInvalidURL    = errors.New("media: invalid fetch url")
	// ErrFetchRefused: the URL (or a redirect) leads to an address the
	// ssrf guard refuses, another scheme, or too many redirects.
	ErrFetchRefused = errors.New("media: fetch destination refused")
	ErrFetchFailed  = errors.New("media: remote fetch failed")
	ErrFetchTimeout = errors.New("media: remote fetch timed out")
)

// MaxFetchURLLen bounds a fetch URL.
const MaxFetchURLLen = 2048

// DownloadPathPrefix is where content is served: <prefix><id>/content.
const DownloadPathPrefix = "/v1/media/"

// Config configures a Service. Zero durations and nil functions get the
// defaults noted.
type Config struct {
	Store     Store
	MaxBytes  int64         // required, > 0
	Retention time.Duration // required, > 0
	Signer    *signedurl.Signer
	// PublicBaseURL prefixes download URLs ("https://gw.example"); empty:
	// URLs are paths.
	PublicBaseURL string
	// Fetcher is the ssrf.Client for Fetch; nil disables remote ingest.
	Fetcher *http.Client
	// OrphanGrace is how old debris must be before Sweep removes it
	// (default 1 h).
	OrphanGrace time.Duration
	Now         func() time.Time       // default time.Now
	NewID       func() (string, error) // default mediaid.New
	Logger      zerolog.Logger
}

// Service applies the rules.
type Service struct {
	cfg Config
	log zerolog.Logger
}

// New validates cfg.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("media: a store is required")
	case cfg.MaxBytes <= sniff.HeadLen:
		return nil, fmt.Errorf("media: max bytes must exceed %d", sniff.HeadLen)
	case cfg.Retention <= 0:
		return nil, errors.New("media: retention must be positive")
	case cfg.Signer == nil:
		return nil, errors.New("media: a url signer is required")
	}
	if cfg.OrphanGrace <= 0 {
		cfg.OrphanGrace = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = mediaid.New
	}
	return &Service{cfg: cfg, log: cfg.Logger.With().Str("component", "media").Logger()}, nil
}

// MaxBytes is the size limit.
func (s *Service) MaxBytes() int64 { return s.cfg.MaxBytes }

// FetchEnabled reports whether Fetch is configured.
func (s *Service) FetchEnabled() bool { return s.cfg.Fetcher != nil }

// ExpiresAt is when m is removed by retention.
func (s *Service) ExpiresAt(m Meta) time.Time { return m.CreatedAt.Add(s.cfg.Retention) }

func (s *Service) expired(m Meta) bool { return !s.cfg.Now().Before(s.ExpiresAt(m)) }

// SourceError is a read error of the bytes being ingested (the client's
// body, or the remote answer), as opposed to a storage failure.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "media source: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// limitReader passes at most max bytes; one byte more is ErrTooLarge (so
// at most max+1 bytes are ever read from r). Other read errors become
// *SourceError; an oversize signal from below (http.MaxBytesReader, the
// ssrf body cap) is ErrTooLarge too.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, l.wrap(err)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, l.wrap(err)
}

func (l *limitReader) wrap(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case err == nil || err == io.EOF:
		return err
	case errors.As(err, &mbe), errors.Is(err, ssrf.ErrTooLarge):
		return ErrTooLarge
	}
	return &SourceError{Err: err}
}

// ingest sniffs the first bytes of r and stores it for owner.
func (s *Service) ingest(ctx context.Context, owner string, r io.Reader) (Meta, error) {
	if owner == "" {
		return Meta{}, errors.New("media: no owner")
	}
	lim := &limitReader{r: r, left: s.cfg.MaxBytes}
	head := make([]byte, sniff.HeadLen)
	n, err := io.ReadFull(lim, head)
	switch {
	case err == io.EOF:
		return Meta{}, ErrEmpty
	case err == io.ErrUnexpectedEOF:
	case err != nil:
		return Meta{}, err
	}
	head = head[:n]
	ct, ok := sniff.Detect(head)
	if !ok {
		return Meta{}, fmt.Errorf("%w (sniffed %s)", ErrUnsupportedType, ct)
	}
	body := io.MultiReader(bytes.NewReader(head), lim)
	for attempt := 0; ; attempt++ {
		id, err := s.cfg.NewID()
		if err != nil {
			return Meta{}, err
		}
		m := Meta{ID: id, Owner: owner, ContentType: ct, CreatedAt: s.cfg.Now().UTC().Truncate(time.Second)}
		m, err = s.cfg.Store.Put(ctx, m, body)
		if errors.Is(err, ErrExists) && attempt < 2 {
			continue // Put refuses an existing id before reading
		}
		return m, err
	}
}

// Upload stores the body of an upload for owner. Rejections: ErrTooLarge,
// ErrEmpty, ErrUnsupportedType, ErrBody.
func (s *Service) Upload(ctx context.Context, owner string, body io.Reader) (Meta, error) {
	m, err := s.ingest(ctx, owner, body)
	var se *SourceError
	if errors.As(err, &se) {
		return Meta{}, fmt.Errorf("%w: %w", ErrBody, se.Err)
	}
	if err == nil {
		s.log.Info().Str("media_id", m.ID).Str("content_type", m.ContentType).Int64("size", m.Size).Msg("media stored")
	}
	return m, err
}

// CheckFetchURL parses a fetch URL: absolute http(s), a host, no
// credentials, at most MaxFetchURLLen bytes.
func CheckFetchURL(raw string) (*url.URL, error) {
	if raw == "" || len(raw) > MaxFetchURLLen {
		return nil, ErrInvalidURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
		u.User != nil || u.Opaque != "" {
		return nil, ErrInvalidURL
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, ErrInvalidURL
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// Fetch downloads rawURL through the ssrf-guarded client and stores it like
// an upload. Rejections: ErrFetchDisabled, ErrInvalidURL, ErrFetchRefused,
// ErrFetchFailed, ErrFetchTimeout, ErrTooLarge, ErrEmpty,
// ErrUnsupportedType.
func (s *Service) Fetch(ctx context.Context, owner, rawURL string) (Meta, error) {
	if s.cfg.Fetcher == nil {
		return Meta{}, ErrFetchDisabled
	}
	u, err := CheckFetchURL(rawURL)
	if err != nil {
		return Meta{}, err
	}
	// Only scheme and host are logged: a query may carry someone's token.
	log := s.log.With().Str("fetch_host", u.Scheme+"://"+u.Host).Logger()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Meta{}, ErrInvalidURL
	}
	req.Header.Set("User-Agent", "edgeguard-media-api/1")
	req.Header.Set("Accept", "image/jpeg, image/png, image/gif, image/webp")
	resp, err := s.cfg.Fetcher.Do(req)
	if err != nil {
		err = fetchError(err)
		log.Info().Err(err).Msg("remote fetch refused or failed")
		return Meta{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Info().Int("remote_status", resp.StatusCode).Msg("remote fetch failed")
		return Meta{}, fmt.Errorf("%w: remote answered %d", ErrFetchFailed, resp.StatusCode)
	}
	m, err := s.ingest(ctx, owner, resp.Body)
	var se *SourceError
	if errors.As(err, &se) {
		err = fetchError(se.Err)
	}
	if err != nil {
		log.Info().Err(err).Msg("remote fetch not stored")
		return Meta{}, err
	}
	log.Info().Str("media_id", m.ID).Str("content_type", m.ContentType).Int64("size", m.Size).Msg("media fetched")
	return m, nil
}

// fetchError maps an error of the guarded client to a rejection.
func fetchError(err error) error {
	// *url.Error repeats the URL, query included (someone's token, a
	// signature): keep only its cause, so the error can be logged.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, ssrf.ErrBlocked), errors.Is(err, ssrf.ErrScheme), errors.Is(err, ssrf.ErrTooManyRedirects):
		return fmt.Errorf("%w: %w", ErrFetchRefused, err)
	case errors.Is(err, ssrf.ErrInvalidHost):
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	case errors.Is(err, ssrf.ErrTooLarge), errors.Is(err, ErrTooLarge):
		return ErrTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: %w", ErrFetchTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrFetchFailed, err)
}

// Get returns owner's object id. Another owner's, an unknown, an expired
// and a malformed id are all ErrNotFound.
func (s *Service) Get(ctx context.Context, owner, id string) (Meta, error) {
	if !mediaid.Valid(id) || owner == "" {
		return Meta{}, ErrNotFound
	}
	m, err := s.cfg.Store.Stat(ctx, id)
	if err != nil {
		return Meta{}, err
	}
	if m.Owner != owner || s.expired(m) {
		return Meta{}, ErrNotFound
	}
	return m, nil
}

// SignedURL is a download capability.
type SignedURL struct {
	URL       string
	ExpiresAt time.Time
}

// SignURL returns a download URL for owner's object id (ErrNotFound as Get).
func (s *Service) SignURL(ctx context.Context, owner, id string) (SignedURL, error) {
	m, err := s.Get(ctx, owner, id)
	if err != nil {
		return SignedURL{}, err
	}
	exp, sig, expires := s.cfg.Signer.Sign(m.ID)
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}, "sig": {sig}}
	return SignedURL{URL: s.cfg.PublicBaseURL + DownloadPathPrefix + m.ID + "/content?" + q.Encode(), ExpiresAt: expires}, nil
}

// OpenSigned opens object id for a download with the URL's exp and sig:
// ErrURLInvalid (also for a malformed id), ErrURLExpired, or ErrNotFound
// when the signature is good but the object is gone.
func (s *Service) OpenSigned(ctx context.Context, id, exp, sig string) (io.ReadSeekCloser, Meta, error) {
	if !mediaid.Valid(id) {
		return nil, Meta{}, ErrURLInvalid
	}
	switch err := s.cfg.Signer.Verify(id, exp, sig); {
	case errors.Is(err, signedurl.ErrExpired):
		return nil, Meta{}, ErrURLExpired
	case err != nil:
		return nil, Meta{}, ErrURLInvalid
	}
	f, m, err := s.cfg.Store.Open(ctx, id)
	if err != nil {
		return nil, Meta{}, err
	}
	if s.expired(m) {
		_ = f.Close()
		return nil, Meta{}, ErrNotFound
	}
	return f, m, nil
}

// Delete removes owner's object id (ErrNotFound as Get).
func (s *Service) Delete(ctx context.Context, owner, id string) error {
	if _, err := s.Get(ctx, owner, id); err != nil {
		return err
	}
	if err := s.cfg.Store.Delete(ctx, id); err != nil {
		return err
	}
	s.log.Info().Str("media_id", id).Msg("media deleted")
	return nil
}

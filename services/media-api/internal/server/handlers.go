package server

import (
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/edgeguard/edgeguard/services/media-api/internal/sniff"
	"github.com/gin-gonic/gin"
)

type handlers struct {
	cfg Config
}

// MediaJSON is the answer describing one object.
type MediaJSON struct {
	ID          string    `json:"id"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (h *handlers) mediaJSON(m media.Meta) MediaJSON {
	return MediaJSON{ID: m.ID, ContentType: m.ContentType, Size: m.Size, CreatedAt: m.CreatedAt.UTC(),
		ExpiresAt: h.cfg.Media.ExpiresAt(m).UTC()}
}

// subject is the verified identity's subject (ginedge put it there; the
// X-User-* headers are never read).
func subject(c *gin.Context) (string, bool) {
	id, ok := ginedge.Identity(c)
	if !ok || id.Subject == "" {
		ginedge.Abort(c, http.StatusUnauthorized, "credential_missing", "authentication required")
		return "", false
	}
	return id.Subject, true
}

// upload: POST /v1/media — a raw body, or multipart/form-data whose one
// part is the field "file".
func (h *handlers) upload(c *gin.Context) {
	owner, ok := subject(c)
	if !ok {
		return
	}
	max := h.cfg.Media.MaxBytes()
	ct := c.Request.Header.Get("Content-Type")
	isMultipart := strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "multipart/")
	limit := max
	if isMultipart {
		limit += MultipartOverhead
	}
	if c.Request.ContentLength > limit {
		fail(c, media.ErrTooLarge) // refused before a byte of the body is read
		return
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	if !isMultipart {
		m, err := h.cfg.Media.Upload(c.Request.Context(), owner, body)
		if err != nil {
			fail(c, err)
			return
		}
		h.created(c, m)
		return
	}
	mr, err := multipartReader(ct, body)
	if err != nil {
		fail(c, err)
		return
	}
	part, err := mr.NextPart()
	if err != nil {
		fail(c, malformedMultipart(err))
		return
	}
	if part.FormName() != "file" {
		fail(c, &multipartError{message: `the first part must be the form field "file"`})
		return
	}
	m, err := h.cfg.Media.Upload(c.Request.Context(), owner, part)
	if err != nil {
		fail(c, err)
		return
	}
	if _, err := mr.NextPart(); err != io.EOF {
		// a second part, or a body that does not end properly: nothing
		// half-understood is kept
		if derr := h.cfg.Media.Delete(c.Request.Context(), owner, m.ID); derr != nil {
			ginedge.Logger(c).Warn().Err(derr).Str("media_id", m.ID).Msg("could not remove a refused upload")
		}
		if err == nil {
			fail(c, &multipartError{message: `exactly one part, the form field "file", is accepted`})
			return
		}
		fail(c, malformedMultipart(err))
		return
	}
	h.created(c, m)
}

// multipartReader checks the multipart Content-Type: multipart/form-data
// with a boundary of 1-70 characters (RFC 2046).
func multipartReader(ct string, body io.Reader) (*multipart.Reader, error) {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" {
		return nil, &multipartError{message: "Content-Type must be multipart/form-data with a boundary, or the raw image"}
	}
	b := params["boundary"]
	if b == "" || len(b) > 70 {
		return nil, &multipartError{message: "multipart boundary missing or longer than 70 characters"}
	}
	return multipart.NewReader(body, b), nil
}

// multipartError refuses a multipart upload (400 invalid_multipart) with
// its message; err, when set, is the parser's, logged at debug, never
// shown.
type multipartError struct {
	message string
	err     error
}

func (e *multipartError) Error() string {
	if e.err != nil {
		return "invalid multipart body: " + e.message + ": " + e.err.Error()
	}
	return "invalid multipart body: " + e.message
}

func (e *multipartError) Unwrap() error { return e.err }

// malformedMultipart is a part the parser could not read: over the limit
// (media_too_large, *http.MaxBytesError) or malformed.
func malformedMultipart(err error) error {
	return &multipartError{message: `the body must be multipart/form-data with one part, the form field "file"`, err: err}
}

func (h *handlers) created(c *gin.Context, m media.Meta) {
	c.Header("Location", media.DownloadPathPrefix+m.ID)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, h.mediaJSON(m))
}

// FetchRequest is the body of POST /v1/media/fetch.
type FetchRequest struct {
	URL string `json:"url"`
}

// fetchBody is the fetch body: ginedge.JSONBody, the services' one strict
// decoder. Names match case-insensitively ("URL"), as they always have
// here (encoding/json's rule).
var fetchBody = ginedge.JSONBody{Limit: MaxFetchBody, FoldNames: true}

// DecodeFetch decodes a fetch body: one JSON object with exactly the field
// "url" (a string), nothing after it. Refusals are *ginedge.BodyError.
func DecodeFetch(body []byte) (FetchRequest, error) {
	var req FetchRequest
	if err := fetchBody.Decode(body, &req); err != nil {
		return FetchRequest{}, err
	}
	if req.URL == "" {
		return FetchRequest{}, invalidURL(`"url" is required`)
	}
	if _, err := media.CheckFetchURL(req.URL); err != nil {
		return FetchRequest{}, invalidURL("url must be an absolute http or https url without credentials, at most 2048 bytes")
	}
	return req, nil
}

func invalidURL(message string) *ginedge.BodyError {
	return &ginedge.BodyError{Status: http.StatusBadRequest, Code: "invalid_url", Message: message}
}

// fetch: POST /v1/media/fetch {"url": "https://…"}.
func (h *handlers) fetch(c *gin.Context) {
	owner, ok := subject(c)
	if !ok {
		return
	}
	if !h.cfg.Media.FetchEnabled() {
		fail(c, media.ErrFetchDisabled)
		return
	}
	body, err := fetchBody.Read(c)
	if err != nil {
		fail(c, err)
		return
	}
	req, err := DecodeFetch(body)
	if err != nil {
		fail(c, err)
		return
	}
	m, err := h.cfg.Media.Fetch(c.Request.Context(), owner, req.URL)
	if err != nil {
		fail(c, err)
		return
	}
	h.created(c, m)
}

// get: GET /v1/media/{id} — the owner's metadata; 404 for everyone else.
func (h *handlers) get(c *gin.Context) {
	owner, ok := subject(c)
	if !ok {
		return
	}
	m, err := h.cfg.Media.Get(c.Request.Context(), owner, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, h.mediaJSON(m))
}

// delete: DELETE /v1/media/{id} — 204 for the owner; 404 for everyone else.
func (h *handlers) delete(c *gin.Context) {
	owner, ok := subject(c)
	if !ok {
		return
	}
	if err := h.cfg.Media.Delete(c.Request.Context(), owner, c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// signURL: POST /v1/media/{id}/url — a signed download URL for the owner.
func (h *handlers) signURL(c *gin.Context) {
	owner, ok := subject(c)
	if !ok {
		return
	}
	u, err := h.cfg.Media.SignURL(c.Request.Context(), owner, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"url": u.URL, "expires_at": u.ExpiresAt.UTC()})
}

// content: GET /v1/media/{id}/content?exp=…&sig=… — no identity: the signed
// URL is the capability. Served as an attachment with the stored type and
// nosniff, so a browser never renders it as a page.
func (h *handlers) content(c *gin.Context) {
	q := c.Request.URL.Query()
	exp, sig := q["exp"], q["sig"]
	if len(exp) != 1 || len(sig) != 1 {
		fail(c, media.ErrURLInvalid)
		return
	}
	f, m, err := h.cfg.Media.OpenSigned(c.Request.Context(), c.Param("id"), exp[0], sig[0])
	if err != nil {
		fail(c, err)
		return
	}
	defer f.Close()
	hd := c.Writer.Header()
	hd.Set("Content-Type", m.ContentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Disposition", `attachment; filename="`+m.ID+sniff.Ext(m.ContentType)+`"`)
	hd.Set("Cache-Control", "private")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hd.Set("ETag", strconv.Quote(m.SHA256))
	http.ServeContent(c.Writer, c.Request, "", m.CreatedAt, f)
}

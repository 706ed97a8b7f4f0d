package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/gin-gonic/gin"
)

// decodeError is a refused body: status and stable code.
type decodeError struct {
	status  int
	code    string
	message string
}

func (e *decodeError) Error() string { return e.code + ": " + e.message }

// readBody reads at most limit bytes of the request body. A missing body is
// nil. The Content-Type, when a body is present, must be application/json.
func readBody(r *http.Request, limit int64) ([]byte, *decodeError) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &decodeError{http.StatusBadRequest, "invalid_request", "could not read the request body"}
	}
	if int64(len(body)) > limit {
		return nil, &decodeError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", limit)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, &decodeError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json"}
		}
	}
	return body, nil
}

// decodeJSON decodes exactly one JSON object into dst: unknown fields,
// wrong types, trailing data and non-objects are refused with stable codes.
func decodeJSON(body []byte, dst any) *decodeError {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &decodeError{http.StatusBadRequest, "invalid_json", "request body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := typeErr.Field
			if field == "" {
				field = "body"
			}
			return &decodeError{http.StatusBadRequest, "invalid_field_type", fmt.Sprintf("field %q has the wrong type", truncate(field, 64))}
		case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
			return &decodeError{http.StatusBadRequest, "invalid_json", "request body is not valid JSON"}
		default:
			const unknown = "json: unknown field "
			if msg := err.Error(); len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
				return &decodeError{http.StatusBadRequest, "unknown_field", "unknown field " + truncate(msg[len(unknown):], 66)}
			}
			return &decodeError{http.StatusBadRequest, "invalid_json", "request body is not valid JSON"}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &decodeError{http.StatusBadRequest, "invalid_json", "unexpected data after the JSON object"}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CreateRequest is the body of POST /auth/api-keys.
type CreateRequest struct {
	Name          *string   `json:"name"`
	ExpiresInDays *int      `json:"expires_in_days"`
	Roles         *[]string `json:"roles"`
}

// DecodeCreate decodes and bounds a create body.
func DecodeCreate(body []byte) (keys.CreateInput, *decodeError) {
	var req CreateRequest
	if body == nil {
		return keys.CreateInput{}, &decodeError{http.StatusBadRequest, "invalid_json", "request body is required"}
	}
	if err := decodeJSON(body, &req); err != nil {
		return keys.CreateInput{}, err
	}
	in := keys.CreateInput{ExpiresInDays: req.ExpiresInDays}
	if req.Name != nil {
		in.Name = *req.Name
	}
	if req.Roles != nil {
		in.Roles = *req.Roles
		if in.Roles == nil {
			in.Roles = []string{}
		}
	}
	return in, nil
}

// RotateRequest is the (optional) body of POST /auth/api-keys/{id}/rotate.
type RotateRequest struct {
	GraceSeconds *int `json:"grace_seconds"`
}

// DecodeRotate decodes a rotate body; an empty body means grace 0.
func DecodeRotate(body []byte) (keys.RotateInput, *decodeError) {
	if body == nil {
		return keys.RotateInput{}, nil
	}
	var req RotateRequest
	if err := decodeJSON(body, &req); err != nil {
		return keys.RotateInput{}, err
	}
	in := keys.RotateInput{}
	if req.GraceSeconds != nil {
		in.GraceSeconds = *req.GraceSeconds
	}
	return in, nil
}

// ValidateRequest is the body of POST /internal/api-keys/validate.
type ValidateRequest struct {
	Key *string `json:"key"`
}

// DecodeValidate decodes a validate body.
func DecodeValidate(body []byte) (string, *decodeError) {
	if body == nil {
		return "", &decodeError{http.StatusBadRequest, "invalid_request", "request body is required"}
	}
	var req ValidateRequest
	if err := decodeJSON(body, &req); err != nil {
		err.code = "invalid_request" // the contract has one code for malformed bodies
		return "", err
	}
	if req.Key == nil || *req.Key == "" {
		return "", &decodeError{http.StatusBadRequest, "invalid_request", "key is required"}
	}
	return *req.Key, nil
}

func (h *handlers) body(c *gin.Context, limit int64) ([]byte, bool) {
	body, err := readBody(c.Request, limit)
	if err != nil {
		ginedge.Abort(c, err.status, err.code, err.message)
		return nil, false
	}
	return body, true
}

// KeyView is a key as its owner sees it: never the secret.
type KeyView struct {
	ID         string     `json:"id"`
	KID        string     `json:"kid"`
	Name       string     `json:"name"`
	Last4      string     `json:"last4"`
	Roles      []string   `json:"roles"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func view(r *keys.Record, now time.Time) KeyView {
	return KeyView{ID: r.ID, KID: r.KID, Name: r.Name, Last4: r.Last4, Roles: r.Roles, Status: r.Status(now),
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: r.LastUsedAt}
}

// CreatedView is a new key, with the secret shown this once.
type CreatedView struct {
	KeyView
	Key string `json:"key"`
}

func (h *handlers) create(c *gin.Context) {
	caller, _ := ginedge.Identity(c)
	body, ok := h.body(c, MaxCreateBody)
	if !ok {
		return
	}
	in, derr := DecodeCreate(body)
	if derr != nil {
		ginedge.Abort(c, derr.status, derr.code, derr.message)
		return
	}
	created, err := h.cfg.Keys.Create(c.Request.Context(), caller, in)
	if err != nil {
		h.emitDenied(c, audit.ActionAPIKeyCreated, "", err)
		fail(c, err)
		return
	}
	h.emit(c, audit.ActionAPIKeyCreated, created.Record.KID, audit.OutcomeSuccess, "", audit.SeverityInfo)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, CreatedView{KeyView: view(&created.Record, h.cfg.Keys.Now()), Key: created.Key.Secret()})
}

func (h *handlers) list(c *gin.Context) {
	caller, _ := ginedge.Identity(c)
	recs, err := h.cfg.Keys.List(c.Request.Context(), caller)
	if err != nil {
		fail(c, err)
		return
	}
	now := h.cfg.Keys.Now()
	out := make([]KeyView, len(recs))
	for i := range recs {
		out[i] = view(&recs[i], now)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"keys": out})
}

// keyID returns the path's key UUID; anything else is 404 like an unknown
// or foreign key (no existence oracle, no format hints).
func keyID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !keys.ValidUUID(id) {
		ginedge.Abort(c, http.StatusNotFound, "key_not_found", "no such api key")
		return "", false
	}
	return id, true
}

func (h *handlers) revoke(c *gin.Context) {
	caller, _ := ginedge.Identity(c)
	id, ok := keyID(c)
	if !ok {
		return
	}
	rec, err := h.cfg.Keys.Revoke(c.Request.Context(), caller, id)
	if err != nil {
		h.emitDenied(c, audit.ActionAPIKeyRevoked, "", err)
		fail(c, err)
		return
	}
	h.emit(c, audit.ActionAPIKeyRevoked, rec.KID, audit.OutcomeSuccess, "", audit.SeverityInfo)
	c.Status(http.StatusNoContent)
}

// RotatedView is the answer of a rotation.
type RotatedView struct {
	CreatedView
	ReplacedID       string     `json:"replaced_id"`
	ReplacedKID      string     `json:"replaced_kid"`
	ReplacedRevokeAt *time.Time `json:"replaced_revoked_at"`
}

func (h *handlers) rotate(c *gin.Context) {
	caller, _ := ginedge.Identity(c)
	id, ok := keyID(c)
	if !ok {
		return
	}
	body, ok := h.body(c, MaxRotateBody)
	if !ok {
		return
	}
	in, derr := DecodeRotate(body)
	if derr != nil {
		ginedge.Abort(c, derr.status, derr.code, derr.message)
		return
	}
	r, err := h.cfg.Keys.Rotate(c.Request.Context(), caller, id, in)
	if err != nil {
		h.emitDenied(c, audit.ActionAPIKeyRotated, "", err)
		fail(c, err)
		return
	}
	h.emit(c, audit.ActionAPIKeyRotated, r.Old.KID, audit.OutcomeSuccess, "", audit.SeverityInfo)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, RotatedView{
		CreatedView: CreatedView{KeyView: view(&r.Record, h.cfg.Keys.Now()), Key: r.Key.Secret()},
		ReplacedID:  r.Old.ID, ReplacedKID: r.Old.KID, ReplacedRevokeAt: r.Old.RevokedAt,
	})
}

// ValidateResponse is the 200 answer of the validate endpoint
// (docs/contracts.md).
type ValidateResponse struct {
	Subject   string     `json:"subject"`
	Username  string     `json:"username"`
	Email     string     `json:"email,omitempty"`
	Roles     []string   `json:"roles"`
	KeyID     string     `json:"key_id"`
	ExpiresAt *time.Time `json:"expires_at"`
	Guest     bool       `json:"guest"`
}

func (h *handlers) validate(c *gin.Context) {
	// every malformed body is 400 invalid_request (docs/contracts.md)
	body, derr := readBody(c.Request, MaxValidateBody)
	if derr != nil {
		ginedge.Abort(c, http.StatusBadRequest, "invalid_request", derr.message)
		return
	}
	raw, derr := DecodeValidate(body)
	if derr != nil {
		ginedge.Abort(c, derr.status, derr.code, derr.message)
		return
	}
	v, err := h.cfg.Keys.Validate(c.Request.Context(), raw)
	if err != nil {
		var reason keys.Reason
		if errors.As(err, &reason) {
			ginedge.Logger(c).Debug().Str("reason", string(reason)).Msg("api key refused")
		}
		fail(c, err)
		return
	}
	ginedge.Logger(c).Debug().Str("kid", v.KeyID).Msg("api key valid")
	resp := ValidateResponse{Subject: v.Subject, Username: v.Username, Roles: v.Roles, KeyID: v.KeyID, ExpiresAt: v.ExpiresAt, Guest: v.Guest}
	if resp.Roles == nil {
		resp.Roles = []string{}
	}
	if h.cfg.IncludeEmail {
		resp.Email = v.Email
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, resp)
}

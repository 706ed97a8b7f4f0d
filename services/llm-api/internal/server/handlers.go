package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/gin-gonic/gin"
)

// The request bodies: ginedge.JSONBody, the services' one strict decoder
// (one JSON object, unknown names and trailing data refused, bounded).
// Names match case-insensitively, as they always have on these routes
// (encoding/json's rule).
var (
	createBody     = ginedge.JSONBody{Limit: MaxCreateBody, FoldNames: true}
	rotateBody     = ginedge.JSONBody{Limit: MaxRotateBody, FoldNames: true}
	validateBody   = ginedge.JSONBody{Limit: MaxValidateBody, FoldNames: true}
	guestLoginBody = ginedge.JSONBody{Limit: MaxGuestLoginBody, FoldNames: true}
	sessionBody    = ginedge.JSONBody{Limit: MaxSessionBody, FoldNames: true}
)

// invalid is a refusal of a decoded body (a missing or malformed value).
func invalid(kind error, code, message string) *ginedge.BodyError {
	return &ginedge.BodyError{Status: http.StatusBadRequest, Code: code, Message: message, Kind: kind}
}

// CreateRequest is the body of POST /auth/api-keys.
type CreateRequest struct {
	Name             *string   `json:"name"`
	ExpiresInDays    *int      `json:"expires_in_days"`
	ExpiresInSeconds *int64    `json:"expires_in_seconds"`
	Roles            *[]string `json:"roles"`
	// Budget is the key's own budget and Models its models (absent or
	// null: none / the owner's); within the owner's.
	Budget *BudgetRequest `json:"budget"`
	Models *[]string      `json:"models"`
}

// DecodeCreate decodes and bounds a create body. Refusals are
// *ginedge.BodyError.
func DecodeCreate(body []byte) (keys.CreateInput, error) {
	var req CreateRequest
	if body == nil {
		return keys.CreateInput{}, invalid(ginedge.ErrInvalidJSON, ginedge.CodeInvalidJSON, "request body is required")
	}
	if err := createBody.Decode(body, &req); err != nil {
		return keys.CreateInput{}, err
	}
	in := keys.CreateInput{ExpiresInDays: req.ExpiresInDays, ExpiresInSeconds: req.ExpiresInSeconds}
	if req.Name != nil {
		in.Name = *req.Name
	}
	if req.Roles != nil {
		in.Roles = *req.Roles
		if in.Roles == nil {
			in.Roles = []string{}
		}
	}
	if req.Budget != nil {
		l, err := req.Budget.limits("budget.")
		if err != nil {
			return keys.CreateInput{}, err
		}
		in.Budget = &l
	}
	models, err := checkModels(req.Models, "")
	if err != nil {
		return keys.CreateInput{}, err
	}
	in.Models = models
	return in, nil
}

// RotateRequest is the (optional) body of POST /auth/api-keys/{id}/rotate.
type RotateRequest struct {
	GraceSeconds *int `json:"grace_seconds"`
}

// DecodeRotate decodes a rotate body; an empty body means grace 0.
func DecodeRotate(body []byte) (keys.RotateInput, error) {
	if body == nil {
		return keys.RotateInput{}, nil
	}
	var req RotateRequest
	if err := rotateBody.Decode(body, &req); err != nil {
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

// DecodeValidate decodes a validate body. Every refusal is 400
// invalid_request: the contract (docs/contracts.md) has one code for
// malformed bodies.
func DecodeValidate(body []byte) (string, error) {
	if body == nil {
		return "", invalid(ginedge.ErrInvalidJSON, codeInvalidRequest, "request body is required")
	}
	var req ValidateRequest
	if err := validateBody.Decode(body, &req); err != nil {
		return "", asInvalidRequest(err)
	}
	if req.Key == nil || *req.Key == "" {
		return "", invalid(nil, codeInvalidRequest, "key is required")
	}
	return *req.Key, nil
}

// codeInvalidRequest is the validate contract's one code for a malformed
// body.
const codeInvalidRequest = "invalid_request"

// asInvalidRequest turns a refused body into the validate contract's 400
// invalid_request, keeping its message and kind.
func asInvalidRequest(err error) error {
	var be *ginedge.BodyError
	if !errors.As(err, &be) {
		return err
	}
	return invalid(be.Kind, codeInvalidRequest, be.Message)
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
	// Budget is the key's own budget (null: none) and Models its models
	// (null: its owner's).
	Budget *LimitsView `json:"budget"`
	Models []string    `json:"models"`
}

func view(r *keys.Record, now time.Time) KeyView {
	v := KeyView{ID: r.ID, KID: r.KID, Name: r.Name, Last4: r.Last4, Roles: r.Roles, Status: r.Status(now),
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: r.LastUsedAt, Models: r.Models}
	if r.Budget != nil {
		b := limitsView(*r.Budget)
		v.Budget = &b
	}
	return v
}

// CreatedView is a new key, with the secret shown this once.
type CreatedView struct {
	KeyView
	Key string `json:"key"`
}

func (h *handlers) create(c *gin.Context) {
	caller, _ := ginedge.Identity(c)
	body, err := createBody.Read(c)
	if err != nil {
		fail(c, err)
		return
	}
	in, err := DecodeCreate(body)
	if err != nil {
		fail(c, err)
		return
	}
	created, err := h.cfg.Keys.Create(c.Request.Context(), caller, in)
	if err != nil {
		h.refuse(c, audit.ActionAPIKeyCreated, "", err)
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
		fail(c, keys.ErrNotFound) // answered, not audited: no key was named
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
		h.refuse(c, audit.ActionAPIKeyRevoked, "", err)
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
	body, err := rotateBody.Read(c)
	if err != nil {
		fail(c, err)
		return
	}
	in, err := DecodeRotate(body)
	if err != nil {
		fail(c, err)
		return
	}
	r, err := h.cfg.Keys.Rotate(c.Request.Context(), caller, id, in)
	if err != nil {
		h.refuse(c, audit.ActionAPIKeyRotated, "", err)
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
	body, err := validateBody.Read(c)
	if err != nil {
		fail(c, asInvalidRequest(err))
		return
	}
	raw, err := DecodeValidate(body)
	if err != nil {
		fail(c, err)
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

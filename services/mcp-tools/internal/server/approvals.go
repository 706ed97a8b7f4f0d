package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/gin-gonic/gin"
)

// approvals serves /v1/approvals for admins (the route's policy: role
// admin, auth_methods [jwt]).
type approvals struct {
	store *approval.Store
	audit *audit.Emitter // nil: audit off
}

// Decision is the body of POST /v1/approvals/{id}; an empty body approves.
type Decision struct {
	Decision string `json:"decision"` // approve (default) | deny
}

// Decision values.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Errors of DecodeDecision, answered 400 with their codes.
var (
	errDecisionJSON    = &inputError{"invalid_json", "the body must be one JSON object"}
	errDecisionUnknown = &inputError{"unknown_field", "only \"decision\" is accepted"}
	errDecisionValue   = &inputError{"invalid_decision", `decision must be "approve" or "deny"`}
)

type inputError struct{ code, message string }

func (e *inputError) Error() string { return e.code }

// DecodeDecision decodes a decision body: empty (or only whitespace) is
// approve; otherwise one JSON object {"decision":"approve"|"deny"} with no
// other field and no trailing data.
func DecodeDecision(body []byte) (approve bool, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return true, nil
	}
	if body[0] != '{' {
		return false, errDecisionJSON
	}
	var keys map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&keys); err != nil {
		return false, errDecisionJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return false, errDecisionJSON
	}
	for k := range keys {
		if k != "decision" {
			return false, errDecisionUnknown
		}
	}
	var d Decision
	if err := json.Unmarshal(body, &d); err != nil {
		return false, errDecisionValue
	}
	switch d.Decision {
	case "", DecisionApprove:
		return true, nil
	case DecisionDeny:
		return false, nil
	}
	return false, errDecisionValue
}

func (h *approvals) enabled(c *gin.Context) bool {
	if h.store == nil {
		ginedge.Abort(c, http.StatusNotFound, "approvals_disabled", "approvals are not enabled on this service")
		return false
	}
	return true
}

func (h *approvals) list(c *gin.Context) {
	if !h.enabled(c) {
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"approvals": h.store.Pending()})
}

func (h *approvals) get(c *gin.Context) {
	if !h.enabled(c) {
		return
	}
	a, err := h.store.Get(c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"approval": a})
}

func (h *approvals) decide(c *gin.Context) {
	if !h.enabled(c) {
		return
	}
	id := c.Param("id")
	if !approval.ValidID(id) {
		fail(c, approval.ErrInvalidID)
		return
	}
	if c.Request.ContentLength != 0 {
		if ct := c.GetHeader("Content-Type"); ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
				ginedge.Abort(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
				return
			}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxDecisionBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			ginedge.Abort(c, http.StatusRequestEntityTooLarge, "body_too_large", "request body over 1 KiB")
			return
		}
		ginedge.Abort(c, http.StatusBadRequest, "body_unreadable", "the request body could not be read")
		return
	}
	approve, err := DecodeDecision(body)
	if err != nil {
		var in *inputError
		if errors.As(err, &in) {
			ginedge.Abort(c, http.StatusBadRequest, in.code, in.message)
			return
		}
		fail(c, err)
		return
	}
	admin, ok := ginedge.Identity(c)
	if !ok { // the route's middleware guarantees one
		ginedge.Abort(c, http.StatusUnauthorized, "credential_missing", "authentication required")
		return
	}
	a, err := h.store.Decide(id, approval.User{Subject: admin.Subject, Username: admin.Username}, approve)
	decision := DecisionApprove
	if !approve {
		decision = DecisionDeny
	}
	ev := ginedge.Logger(c).Info().Str("approval_id", id).Str("decision", decision).Str("admin_sub", admin.Subject)
	if a.ID != "" {
		ev = ev.Str("requester_sub", a.RequestedBy.Subject).Str("tool", a.Tool).Str("payload_sha256", a.PayloadHash)
	}
	action := audit.ActionApprovalGranted
	if !approve {
		action = audit.ActionApprovalDenied
	}
	aev := audit.Event{RequestID: c.Writer.Header().Get(edgehttp.HeaderRequestID),
		Actor: audit.Actor{Subject: audit.CleanTarget(admin.Subject), KeyID: audit.CleanKeyID(admin.APIKeyID),
			IP: audit.CleanIP(ginedge.ClientIP(c))},
		Action: action, Target: id, Outcome: audit.OutcomeSuccess, Severity: audit.SeverityInfo, Source: "mcp-tools"}
	if err != nil {
		aev.Outcome, aev.Reason = audit.OutcomeDenied, reasonOf(err)
		if errors.Is(err, approval.ErrSelfApproval) {
			aev.Severity = audit.SeverityWarning
		}
		if aev.Reason != "internal_error" && aev.Reason != "invalid_approval_id" {
			h.audit.Emit(aev)
		}
		ev.Str("reason", reasonOf(err)).Msg("approval decision refused")
		fail(c, err)
		return
	}
	h.audit.Emit(aev)
	ev.Msg("approval decided")
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"approval": a})
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, approval.ErrInvalidID):
		return "invalid_approval_id"
	case errors.Is(err, approval.ErrNotFound):
		return "approval_not_found"
	case errors.Is(err, approval.ErrExpired):
		return "approval_expired"
	case errors.Is(err, approval.ErrNotPending):
		return "approval_not_pending"
	case errors.Is(err, approval.ErrSelfApproval):
		return "self_approval_forbidden"
	}
	return "internal_error"
}

// fail maps an error of package approval to its answer.
func fail(c *gin.Context, err error) {
	switch code := reasonOf(err); code {
	case "invalid_approval_id":
		ginedge.Abort(c, http.StatusBadRequest, code, "not an approval id")
	case "approval_not_found":
		ginedge.Abort(c, http.StatusNotFound, code, "no such approval")
	case "approval_expired":
		ginedge.Abort(c, http.StatusConflict, code, "the approval expired")
	case "approval_not_pending":
		ginedge.Abort(c, http.StatusConflict, code, "the approval was already decided")
	case "self_approval_forbidden":
		ginedge.Abort(c, http.StatusForbidden, code, "an approval must be decided by another administrator than its requester")
	default:
		ginedge.Logger(c).Error().Err(err).Msg("request failed")
		ginedge.Abort(c, http.StatusInternalServerError, "internal_error", "internal error")
	}
}

package server

import (
	"bytes"
	"errors"
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

// decisionBody is the decision body: ginedge.JSONBody, the services' one
// strict decoder; names match exactly ("Decision" is an unknown field).
var decisionBody = ginedge.JSONBody{Limit: MaxDecisionBody}

// errDecisionValue refuses a decision that is neither approve nor deny
// (a wrong type included).
var errDecisionValue = &ginedge.BodyError{Status: http.StatusBadRequest, Code: "invalid_decision",
	Message: `decision must be "approve" or "deny"`}

// DecodeDecision decodes a decision body: empty (or only whitespace) is
// approve; otherwise one JSON object {"decision":"approve"|"deny"} with no
// other field and no trailing data. Refusals are *ginedge.BodyError.
func DecodeDecision(body []byte) (approve bool, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return true, nil
	}
	var d Decision
	if err := decisionBody.Decode(body, &d); err != nil {
		if errors.Is(err, ginedge.ErrFieldType) {
			return false, errDecisionValue
		}
		return false, err
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
	body, err := decisionBody.Read(c)
	if err != nil {
		fail(c, err)
		return
	}
	approve, err := DecodeDecision(body)
	if err != nil {
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
		refusal, _ := answerOf(err)
		if refusal.severity != "" { // a refusal the table makes an audit event
			aev.Outcome, aev.Reason, aev.Severity = audit.OutcomeDenied, refusal.code, refusal.severity
			h.audit.Emit(aev)
		}
		ev.Str("reason", refusal.code).Msg("approval decision refused")
		fail(c, err)
		return
	}
	h.audit.Emit(aev)
	ev.Msg("approval decided")
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"approval": a})
}

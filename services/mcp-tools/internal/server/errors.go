package server

import (
	"errors"
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/gin-gonic/gin"
)

// answer is how mcp-tools answers an error: status, stable code and the
// client's message (never the error's text), and the refusal's audit
// severity ("": not an audit event).
type answer struct {
	status   int
	code     string
	message  string
	severity audit.Severity
}

// errorTable is mcp-tools' one mapping of errors to answers, read by the
// handlers (fail) and by the approval audit record (decide) alike.
// Sentinels are matched with errors.Is, first row first; answerOf adds
// refused bodies, which carry their own code, and the failure answer for
// everything else.
var errorTable = []struct {
	err error
	answer
}{
	// a malformed id names no approval: refused, not audited
	{approval.ErrInvalidID, answer{http.StatusBadRequest, "invalid_approval_id", "not an approval id", ""}},
	{approval.ErrNotFound, answer{http.StatusNotFound, "approval_not_found", "no such approval", audit.SeverityInfo}},
	{approval.ErrExpired, answer{http.StatusConflict, "approval_expired", "the approval expired", audit.SeverityInfo}},
	{approval.ErrNotPending, answer{http.StatusConflict, "approval_not_pending", "the approval was already decided", audit.SeverityInfo}},
	{approval.ErrSelfApproval, answer{http.StatusForbidden, "self_approval_forbidden",
		"an approval must be decided by another administrator than its requester", audit.SeverityWarning}},
}

// failure answers every other error: a bug or a technical failure,
// logged, never an audit event.
var failure = answer{http.StatusInternalServerError, "internal_error", "internal error", ""}

// answerOf returns err's answer and whether err is a refusal (false: a
// failure). A refused body (*ginedge.BodyError) answers with its own code.
func answerOf(err error) (answer, bool) {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.answer, true
		}
	}
	var body *ginedge.BodyError
	if errors.As(err, &body) {
		return answer{status: body.Status, code: body.Code, message: body.Message}, true
	}
	return failure, false
}

// fail answers err by the table; a failure is logged (its detail stays in
// the log).
func fail(c *gin.Context, err error) {
	a, refused := answerOf(err)
	if !refused {
		ginedge.Logger(c).Error().Err(err).Msg("request failed")
	}
	ginedge.Abort(c, a.status, a.code, a.message)
}

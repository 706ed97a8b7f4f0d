package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
)

// One table answers every error, wrapped or not, and says which refusals
// are audit events; anything unknown is a 500 failure, never audited.
func TestErrorTableAnswersAndAuditsEveryError(t *testing.T) {
	for _, tc := range []struct {
		err      error
		status   int
		code     string
		severity audit.Severity
		refused  bool
	}{
		{approval.ErrInvalidID, 400, "invalid_approval_id", "", true},
		{approval.ErrNotFound, 404, "approval_not_found", audit.SeverityInfo, true},
		{fmt.Errorf("decide: %w", approval.ErrExpired), 409, "approval_expired", audit.SeverityInfo, true},
		{approval.ErrNotPending, 409, "approval_not_pending", audit.SeverityInfo, true},
		{approval.ErrSelfApproval, 403, "self_approval_forbidden", audit.SeverityWarning, true},
		{errDecisionValue, 400, "invalid_decision", "", true},
		{&ginedge.BodyError{Status: 400, Code: "body_unreadable", Message: "x", Kind: ginedge.ErrBodyUnreadable}, 400, "body_unreadable", "", true},
		{&ginedge.BodyError{Status: 413, Code: "body_too_large", Message: "x", Kind: ginedge.ErrBodyTooLarge}, 413, "body_too_large", "", true},
		{errors.New("store corrupted"), 500, "internal_error", "", false},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			a, refused := answerOf(tc.err)
			if a.status != tc.status || a.code != tc.code || a.severity != tc.severity || refused != tc.refused || a.message == "" {
				t.Fatalf("got %+v %v, want %d %s %q %v", a, refused, tc.status, tc.code, tc.severity, tc.refused)
			}
		})
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
)

// One table answers every error, wrapped or not, and says which refusals
// are audit events; anything unknown is a 503 failure, never audited.
func TestErrorTableAnswersAndAuditsEveryError(t *testing.T) {
	limited := &guests.LimitedError{Scope: "global", Result: ratelimit.Result{}}
	for _, tc := range []struct {
		err      error
		status   int
		code     string
		severity audit.Severity
		refused  bool
	}{
		{keys.ErrGuest, 403, "forbidden_role", audit.SeverityWarning, true},
		{fmt.Errorf("create: %w", keys.ErrRolesNotHeld), 403, "roles_not_held", audit.SeverityWarning, true},
		{keys.ErrLimit, 409, "key_limit_reached", audit.SeverityInfo, true},
		{keys.ErrNameTaken, 409, "name_taken", "", true},
		{keys.ErrNotFound, 404, "key_not_found", audit.SeverityInfo, true},
		{keys.ErrNotActive, 409, "key_not_active", audit.SeverityInfo, true},
		{guests.ErrInvalidGrant, 401, "invalid_grant", "", true},
		{fmt.Errorf("keycloak: %w", guests.ErrIdP), 502, "idp_error", "", true},
		{&ginedge.BodyError{Status: 400, Code: "invalid_body", Message: "x", Kind: ginedge.ErrBodyUnreadable}, 400, "invalid_request", "", true},
		{&ginedge.BodyError{Status: 413, Code: "body_too_large", Message: "x", Kind: ginedge.ErrBodyTooLarge}, 413, "body_too_large", "", true},
		{&keys.InputError{Code: "invalid_name", Message: "x"}, 400, "invalid_name", "", true},
		{keys.Reason("key_revoked"), 401, "key_revoked", "", true},
		{&auditlog.QueryError{Code: "invalid_limit", Message: "x"}, 400, "invalid_limit", "", true},
		{limited, 429, "rate_limited", "", true},
		{fmt.Errorf("budget override: %w", entitlement.ErrNotFound), 404, "budget_override_not_found", "", true},
		{keys.ErrBudgetsOff, 400, "key_budgets_disabled", "", true},
		{budget.ErrNoBudget, 403, "budget_not_configured", "", true},
		{&ledger.QueryError{Code: "invalid_date_range", Message: "x"}, 400, "invalid_date_range", "", true},
		{errStoreDown, 503, "unavailable", "", false},
		{context.DeadlineExceeded, 503, "unavailable", "", false},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			a, refused := answerOf(tc.err)
			if a.status != tc.status || a.code != tc.code || a.severity != tc.severity || refused != tc.refused || a.message == "" {
				t.Fatalf("got %+v %v, want %d %s %q %v", a, refused, tc.status, tc.code, tc.severity, tc.refused)
			}
		})
	}
	if a, _ := answerOf(limited); a.retryAfter < 1 {
		t.Fatalf("429 without Retry-After: %+v", a)
	}
	if a, _ := answerOf(errors.New("x")); a.retryAfter != 5 {
		t.Fatalf("503 without Retry-After: %+v", a)
	}
}

var errStoreDown = errors.New("postgres: connection refused")

package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/gin-gonic/gin"
)

// answer is how llm-api answers an error: status, stable code and the
// client's message (never the error's text), Retry-After in seconds (0:
// none), and the refusal's audit severity ("": not an audit event).
type answer struct {
	status     int
	code       string
	message    string
	retryAfter int
	severity   audit.Severity
}

// errorTable is llm-api's one mapping of errors to answers, read by the
// handlers (fail) and by the audit record (refuse) alike. Sentinels are
// matched with errors.Is, first row first; answerOf adds the errors that
// carry their own code, and the failure answer for everything else.
var errorTable = []struct {
	err error
	answer
}{
	// API-key management: the refusals an owner can meet are audit events
	{keys.ErrGuest, answer{http.StatusForbidden, "forbidden_role", "guests cannot manage api keys", 0, audit.SeverityWarning}},
	{keys.ErrRolesNotHeld, answer{http.StatusForbidden, "roles_not_held", "a key can only carry roles you hold", 0, audit.SeverityWarning}},
	{keys.ErrLimit, answer{http.StatusConflict, "key_limit_reached", "too many active api keys", 0, audit.SeverityInfo}},
	{keys.ErrNameTaken, answer{http.StatusConflict, "name_taken", "an active api key already has this name", 0, ""}},
	{keys.ErrNotFound, answer{http.StatusNotFound, "key_not_found", "no such api key", 0, audit.SeverityInfo}},
	{keys.ErrNotActive, answer{http.StatusConflict, "key_not_active", "the api key is revoked, expired or already rotated", 0, audit.SeverityInfo}},
	// guest sessions: Keycloak's own answer is never echoed
	{guests.ErrInvalidGrant, answer{http.StatusUnauthorized, "invalid_grant", "the refresh token is invalid, expired or revoked", 0, ""}},
	{guests.ErrIdP, answer{http.StatusBadGateway, "idp_error", "the identity provider could not complete the request", 0, ""}},
	// budgets: an override that is not there, a key budget where the
	// service has none, an owner whose roles have no budget
	{entitlement.ErrNotFound, answer{http.StatusNotFound, "budget_override_not_found", "no budget override for this user", 0, ""}},
	{keys.ErrBudgetsOff, answer{http.StatusBadRequest, "key_budgets_disabled", "this server has no budgets: create the key without budget and models", 0, ""}},
	{budget.ErrNoBudget, answer{http.StatusForbidden, "budget_not_configured", "no budget is configured for your roles", 0, ""}},
	// bodies: this service's code for a body that could not be read
	{ginedge.ErrBodyUnreadable, answer{http.StatusBadRequest, "invalid_request", "could not read the request body", 0, ""}},
}

// failure answers every other error: a technical failure (database,
// Redis, the limiter…), logged, never an audit event.
var failure = answer{http.StatusServiceUnavailable, "unavailable", "service temporarily unavailable", 5, ""}

// answerOf returns err's answer and whether err is a refusal (false: a
// failure). Errors that carry their own stable code answer with it: a
// refused body (*ginedge.BodyError), a refused key input (*keys.InputError),
// an API key refused at validation (keys.Reason), a refused audit query
// (*auditlog.QueryError), a refused usage query (*ledger.QueryError), a
// guest limit (*guests.LimitedError).
func answerOf(err error) (answer, bool) {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.answer, true
		}
	}
	var (
		body    *ginedge.BodyError
		in      *keys.InputError
		reason  keys.Reason
		query   *auditlog.QueryError
		usage   *ledger.QueryError
		limited *guests.LimitedError
	)
	switch {
	case errors.As(err, &body):
		return answer{status: body.Status, code: body.Code, message: body.Message}, true
	case errors.As(err, &in):
		return answer{status: http.StatusBadRequest, code: in.Code, message: in.Message}, true
	case errors.As(err, &reason):
		return answer{status: http.StatusUnauthorized, code: string(reason), message: "api key refused"}, true
	case errors.As(err, &query):
		return answer{status: http.StatusBadRequest, code: query.Code, message: query.Message}, true
	case errors.As(err, &usage):
		return answer{status: http.StatusBadRequest, code: usage.Code, message: usage.Message}, true
	case errors.As(err, &limited):
		msg := "too many guest sessions from this address; try again later"
		if limited.Scope == "global" {
			msg = "guest sessions are limited right now; try again later"
		}
		return answer{status: http.StatusTooManyRequests, code: "rate_limited", message: msg,
			retryAfter: max(1, ceilSeconds(limited.Result.RetryAfter()))}, true
	}
	return failure, false
}

// fail answers err by the table; a failure is logged (its detail stays in
// the log, the client sees "unavailable").
func fail(c *gin.Context, err error) {
	a, refused := answerOf(err)
	if !refused {
		ginedge.Logger(c).Error().Err(err).Msg("request failed")
	}
	if a.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(a.retryAfter))
	}
	ginedge.Abort(c, a.status, a.code, a.message)
}

// refuse answers err like fail and, when the table makes the refusal an
// audit event (a guest, roles not held, a foreign or unknown key, a
// limit), records it with its code as the reason.
func (h *handlers) refuse(c *gin.Context, action audit.Action, target string, err error) {
	if a, refused := answerOf(err); refused && a.severity != "" {
		h.emit(c, action, target, audit.OutcomeDenied, a.code, a.severity)
	}
	fail(c, err)
}

package tools

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/sandbox"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// RunPythonArgs are run_python's arguments.
type RunPythonArgs struct {
	Code string `json:"code"`
	// ApprovalID names an approved approval for this exact code (the
	// result of an earlier call). It selects an approval; it cannot create
	// or grant one.
	ApprovalID string `json:"approval_id"`
}

// DecodeRunPythonArgs decodes and checks run_python's arguments: code is
// 1..maxCode bytes of UTF-8 without NUL, approval_id empty or shaped like
// an approval id.
func DecodeRunPythonArgs(raw json.RawMessage, maxCode int) (RunPythonArgs, error) {
	var a RunPythonArgs
	if err := decodeArgs(raw, &a, "code", "approval_id"); err != nil {
		return a, err
	}
	switch {
	case strings.TrimSpace(a.Code) == "":
		return a, argError("code is required")
	case len(a.Code) > maxCode:
		return a, argError("code is too long")
	case !utf8.ValidString(a.Code) || strings.IndexByte(a.Code, 0) >= 0:
		return a, argError("code must be UTF-8 text without NUL characters")
	case a.ApprovalID != "" && !approval.ValidID(a.ApprovalID):
		return a, argError("approval_id is not an approval id")
	}
	return a, nil
}

// ApprovalPending is run_python's answer while a human decides.
type ApprovalPending struct {
	Status     string    `json:"status"` // approval_pending
	ApprovalID string    `json:"approval_id"`
	ExpiresAt  time.Time `json:"expires_at"`
	Message    string    `json:"message"`
}

// RunPythonResult is run_python's answer after a run.
type RunPythonResult struct {
	Status     string          `json:"status"` // executed
	ApprovalID string          `json:"approval_id,omitempty"`
	Result     *sandbox.Result `json:"result"`
}

func (s *Server) runPython() *Tool {
	desc := "Runs Python code in an isolated sandbox and returns stdout, stderr and the exit code."
	if s.cfg.RequireApproval {
		desc += " Every run needs a human approval: the first call returns status approval_pending and an " +
			"approval_id; once an administrator has approved it, call again with the same code and that approval_id. " +
			"An approval is valid for one run of exactly that code."
	}
	return &Tool{
		Def: &mcp.Tool{
			Name:        NameRunPython,
			Title:       "Run Python (sandboxed)",
			Description: desc,
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"code":{"type":"string","minLength":1,"description":"Python source to run"},` +
				`"approval_id":{"type":"string","pattern":"^apr_[a-z2-7]{26}$","description":"the approval_id of an approved earlier call with the same code"}},` +
				`"required":["code"],"additionalProperties":false}`),
			Annotations: &mcp.ToolAnnotations{DestructiveHint: new(true), OpenWorldHint: new(true)},
		},
		Policy:    identity.Policy{RequiredRoles: []string{RoleUser}, ForbiddenRoles: []string{identity.RoleGuest}},
		Dangerous: true,
		handler:   s.handleRunPython,
	}
}

func (s *Server) handleRunPython(ctx context.Context, id *identity.Identity, raw json.RawMessage) *mcp.CallToolResult {
	a, err := DecodeRunPythonArgs(raw, s.cfg.MaxCodeBytes)
	if err != nil {
		return toolError("invalid_arguments", err.Error())
	}
	log := s.logger(ctx)
	user := approval.User{Subject: id.Subject, Username: id.Username}
	code := []byte(a.Code)
	if s.cfg.RequireApproval {
		if a.ApprovalID == "" {
			ap, err := s.cfg.Approvals.Request(user, NameRunPython, code)
			if err != nil {
				if errors.Is(err, approval.ErrTooManyPending) {
					return toolError("too_many_pending_approvals", "too many approvals are pending; wait for a decision or for them to expire")
				}
				log.Error().Err(err).Msg("approval request failed")
				return toolError("unavailable", "the approval could not be recorded")
			}
			log.Info().Str("approval_id", ap.ID).Str("tool", NameRunPython).Str("sub", id.Subject).
				Str("payload_sha256", ap.PayloadHash).Msg("approval requested")
			return pending(ap)
		}
		ap, err := s.cfg.Approvals.Consume(a.ApprovalID, user, NameRunPython, code)
		if err != nil {
			ev := log.Info().Str("approval_id", a.ApprovalID).Str("sub", id.Subject)
			switch {
			case errors.Is(err, approval.ErrPending):
				ev.Str("reason", "approval_pending").Msg("approval not yet decided")
				return pending(ap)
			case errors.Is(err, approval.ErrNotFound), errors.Is(err, approval.ErrInvalidID):
				ev.Str("reason", "approval_not_found").Msg("approval refused")
				return toolError("approval_not_found", "no such approval for you and this tool; call without approval_id to request one")
			case errors.Is(err, approval.ErrDenied):
				ev.Str("reason", "approval_denied").Msg("approval refused")
				return toolError("approval_denied", "an administrator denied this run")
			case errors.Is(err, approval.ErrUsed):
				ev.Str("reason", "approval_used").Msg("approval refused")
				return toolError("approval_used", "this approval was already used; an approval is valid for one run")
			case errors.Is(err, approval.ErrExpired):
				ev.Str("reason", "approval_expired").Msg("approval refused")
				return toolError("approval_expired", "this approval expired; call without approval_id to request a new one")
			case errors.Is(err, approval.ErrPayloadChanged):
				ev.Str("reason", "approval_code_mismatch").Msg("approval refused")
				return toolError("approval_code_mismatch", "the code differs from the approved code; an approval covers exactly one code")
			}
			log.Error().Err(err).Msg("approval check failed")
			return toolError("unavailable", "the approval could not be checked")
		}
		log.Info().Str("approval_id", ap.ID).Str("sub", id.Subject).Msg("approval used")
	}
	res, err := s.cfg.Runner.Run(ctx, a.Code)
	if err != nil {
		log.Warn().Err(err).Str("sub", id.Subject).Msg("sandbox run failed")
		if errors.Is(err, context.DeadlineExceeded) {
			return toolError("timeout", "the sandbox did not answer in time")
		}
		return toolError("sandbox_unavailable", "the sandbox is unavailable")
	}
	return textResult(RunPythonResult{Status: "executed", ApprovalID: a.ApprovalID, Result: res}, res.Status != "Success")
}

func pending(ap approval.Approval) *mcp.CallToolResult {
	return textResult(ApprovalPending{
		Status: "approval_pending", ApprovalID: ap.ID, ExpiresAt: ap.ExpiresAt,
		Message: "This run needs an administrator's approval (POST /v1/approvals/" + ap.ID + "). " +
			"Once approved, call run_python again with the same code and approval_id " + ap.ID + ".",
	}, false)
}

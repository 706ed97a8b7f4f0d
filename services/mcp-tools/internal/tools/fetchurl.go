package tools

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/fetch"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// FetchURLArgs are fetch_url's arguments.
type FetchURLArgs struct {
	URL string `json:"url"`
}

// DecodeFetchURLArgs decodes and checks fetch_url's arguments.
func DecodeFetchURLArgs(raw json.RawMessage) (FetchURLArgs, error) {
	var a FetchURLArgs
	if err := decodeArgs(raw, &a, "url"); err != nil {
		return a, err
	}
	if _, err := fetch.ParseURL(a.URL); err != nil {
		return a, argError("url must be an absolute http(s) URL without credentials, at most 2048 bytes")
	}
	return a, nil
}

func (s *Server) fetchURL() *Tool {
	return &Tool{
		Def: &mcp.Tool{
			Name:  NameFetchURL,
			Title: "Fetch a URL",
			Description: "Fetches a public http(s) URL and returns the beginning of its text content " +
				"(text, JSON, XML). Private, loopback and cloud-metadata addresses are refused.",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"url":{"type":"string","maxLength":2048,` +
				`"description":"absolute http or https URL"}},"required":["url"],"additionalProperties":false}`),
			Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(true)},
		},
		Policy: identity.Policy{RequiredRoles: []string{RoleUser}, ForbiddenRoles: []string{identity.RoleGuest}},
		handler: func(ctx context.Context, id *identity.Identity, raw json.RawMessage) *mcp.CallToolResult {
			a, err := DecodeFetchURLArgs(raw)
			if err != nil {
				return toolError("invalid_arguments", err.Error())
			}
			page, err := s.cfg.Fetcher.Fetch(ctx, a.URL)
			log := s.logger(ctx)
			if err != nil {
				code, msg := "fetch_failed", "the URL could not be fetched"
				switch {
				case errors.Is(err, fetch.ErrBlocked):
					code, msg = "destination_not_allowed", "the URL resolves to an address that is not allowed (private, loopback, link-local or metadata)"
				case errors.Is(err, fetch.ErrNotText):
					code, msg = "not_text", "the answer is not text (text/*, JSON or XML)"
				case errors.Is(err, fetch.ErrInvalidURL):
					code, msg = "invalid_arguments", "url must be an absolute http(s) URL"
				case errors.Is(err, context.DeadlineExceeded):
					code, msg = "timeout", "the fetch took too long"
				}
				// the URL without its query values (they may carry tokens)
				log.Info().Str("sub", id.Subject).Str("url", redact.URLString(a.URL)).Str("reason", code).Err(err).Msg("fetch_url refused or failed")
				return toolError(code, msg)
			}
			return textResult(page, false)
		},
	}
}

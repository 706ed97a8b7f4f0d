// Package tools is mcp-tools' MCP server (github.com/modelcontextprotocol/go-sdk):
// the tool set, each tool's role policy, and the receiving middleware that
// hides from tools/list every tool the caller may not use and answers a call
// of one with the same JSON-RPC error as an unknown tool.
//
// The caller's identity is the one pkg/edgehttp verified for the HTTP
// request (edgehttp.IdentityFrom on the handler's context — the stateless
// streamable transport derives every handler context from the request's);
// nothing in a tool's arguments can change who the caller is or what was
// approved. Without an identity every method fails closed.
//
// It is not the HTTP layer (package server mounts the handler behind the
// authentication middleware) and not an approval authority (package
// approval; admins decide over HTTP).
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/approval"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/fetch"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/sandbox"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// Tool names.
const (
	NameTimeNow   = "time_now"
	NameFetchURL  = "fetch_url"
	NameRunPython = "run_python"
)

// Role a tool may require.
const RoleUser = "user"

// Fetcher is what fetch_url needs (a *fetch.Fetcher).
type Fetcher interface {
	Fetch(ctx context.Context, url string) (*fetch.Page, error)
}

// Runner is what run_python needs (a *sandbox.Client).
type Runner interface {
	Run(ctx context.Context, code string) (*sandbox.Result, error)
}

var (
	_ Fetcher = (*fetch.Fetcher)(nil)
	_ Runner  = (*sandbox.Client)(nil)
)

// Config configures the MCP server. A nil Fetcher leaves fetch_url out; a
// nil Runner leaves run_python out.
type Config struct {
	Fetcher Fetcher
	Runner  Runner
	// Approvals holds run_python's approvals (required with a Runner when
	// RequireApproval is set).
	Approvals       *approval.Store
	RequireApproval bool
	// MaxCodeBytes bounds run_python's code (default 64 KiB).
	MaxCodeBytes int
	// Timeout bounds every tool call (default 60 s).
	Timeout time.Duration
	Now     func() time.Time
	// Logger is used when a handler's context carries no request logger.
	Logger zerolog.Logger
}

// Tool is one tool with its policy.
type Tool struct {
	Def    *mcp.Tool
	Policy identity.Policy
	// Dangerous tools' calls need an approval (when configured).
	Dangerous bool
	handler   func(ctx context.Context, id *identity.Identity, args json.RawMessage) *mcp.CallToolResult
}

// Server is the MCP server and its tool table.
type Server struct {
	MCP   *mcp.Server
	tools map[string]*Tool
	cfg   Config
}

// ErrNoIdentity is answered (as a JSON-RPC error) to a method that reaches
// the server without a verified identity: a wiring bug, never served.
var ErrNoIdentity = errors.New("tools: no verified identity in the request context")

// New builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.MaxCodeBytes <= 0 {
		cfg.MaxCodeBytes = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Runner != nil && cfg.RequireApproval && cfg.Approvals == nil {
		return nil, errors.New("tools: run_python with approvals needs an approval store")
	}
	s := &Server{tools: make(map[string]*Tool), cfg: cfg}
	s.MCP = mcp.NewServer(&mcp.Implementation{Name: "edgeguard-mcp-tools", Version: "1.0.0"}, &mcp.ServerOptions{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
		// Listings differ per caller: never a shared cache.
		SetCacheable: func(_ context.Context, _ mcp.Request, c *mcp.Cacheable) {
			c.CacheScope, c.TTLMs = "private", 0
		},
	})
	s.add(s.timeNow())
	if cfg.Fetcher != nil {
		s.add(s.fetchURL())
	}
	if cfg.Runner != nil {
		s.add(s.runPython())
	}
	s.MCP.AddReceivingMiddleware(s.guard)
	return s, nil
}

// Tools lists the registered tools by name.
func (s *Server) Tools() []string {
	names := make([]string, 0, len(s.tools))
	for n := range s.tools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Server) add(t *Tool) {
	s.tools[t.Def.Name] = t
	s.MCP.AddTool(t.Def, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		id, ok := edgehttp.IdentityFrom(ctx)
		if !ok {
			return nil, noIdentity()
		}
		if t.Policy.Authorize(id) != identity.Allowed { // guard already checked; belt and braces
			return nil, unknownTool(t.Def.Name)
		}
		ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
		var args json.RawMessage
		if req.Params != nil {
			args = req.Params.Arguments
		}
		return t.handler(ctx, id, args), nil
	})
}

// allowed reports whether id may see and call the tool name.
func (s *Server) allowed(id *identity.Identity, name string) bool {
	t, ok := s.tools[name]
	return ok && t.Policy.Authorize(id) == identity.Allowed
}

// guard is the receiving middleware: identity required for every method
// but the handshake, tools/list filtered, hidden tools unknown.
func (s *Server) guard(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		id, ok := edgehttp.IdentityFrom(ctx)
		if !ok {
			return nil, noIdentity()
		}
		switch method {
		case "tools/list":
			res, err := next(ctx, method, req)
			if lr, ok := res.(*mcp.ListToolsResult); ok && err == nil {
				visible := make([]*mcp.Tool, 0, len(lr.Tools))
				for _, t := range lr.Tools {
					if s.allowed(id, t.Name) {
						visible = append(visible, t)
					}
				}
				cp := *lr
				cp.Tools = visible
				return &cp, nil
			}
			return res, err
		case "tools/call":
			name := ""
			if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok && p != nil {
				name = p.Name
			}
			log := s.logger(ctx)
			if !s.allowed(id, name) {
				ev := log.Info().Str("sub", id.Subject).Str("reason", "tool_not_allowed")
				if _, exists := s.tools[name]; exists {
					ev = ev.Str("tool", name)
				}
				ev.Msg("tool call refused")
				return nil, unknownTool(name)
			}
			start := time.Now()
			res, err := next(ctx, method, req)
			ev := log.Info().Str("tool", name).Str("sub", id.Subject).Str("auth_method", id.AuthMethod).Dur("duration", time.Since(start))
			if cr, ok := res.(*mcp.CallToolResult); ok && cr != nil {
				ev = ev.Bool("is_error", cr.IsError)
			}
			if err != nil {
				ev = ev.Str("reason", "rpc_error")
			}
			ev.Msg("tool call")
			return res, err
		}
		return next(ctx, method, req)
	}
}

func (s *Server) logger(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &s.cfg.Logger
}

func noIdentity() error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "authentication required"}
}

// unknownTool is the SDK's own answer to an unknown tool, so a hidden tool
// and a missing one look the same.
func unknownTool(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
}

// MaxArgsBytes bounds a tool's arguments object (the MCP body limit applies
// first; this keeps decoders honest when called directly).
const MaxArgsBytes = 4 << 20

// decodeArgs decodes a tool's arguments into v: one JSON object (absent or
// null is the empty object) whose keys are all in fields, no trailing data.
func decodeArgs(raw json.RawMessage, v any, fields ...string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) > MaxArgsBytes {
		return errors.New("arguments too large")
	}
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return errors.New("arguments must be a JSON object")
	}
	var keys map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&keys); err != nil {
		return errors.New("arguments are not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the arguments")
	}
	for k := range keys {
		if !slices.Contains(fields, k) {
			return errors.New("unknown argument (allowed: " + strings.Join(fields, ", ") + ")")
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && slices.Contains(fields, ute.Field) {
			return fmt.Errorf("argument %q has the wrong type", ute.Field)
		}
		return errors.New("arguments do not match the tool's schema")
	}
	return nil
}

// textResult is a result with v as structured content and as JSON text.
func textResult(v any, isError bool) *mcp.CallToolResult {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"unencodable result"}`)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}, StructuredContent: v, IsError: isError}
}

// ToolError is the structured content of a failed call.
type ToolError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func toolError(code, message string) *mcp.CallToolResult {
	return textResult(ToolError{Error: code, Message: message}, true)
}

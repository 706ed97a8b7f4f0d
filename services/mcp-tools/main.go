// Command mcp-tools is edgeguard's MCP tool server: an MCP endpoint
// (streamable HTTP) at /v1/mcp with role-gated tools, and the admin
// approval endpoints for dangerous tool calls. See README.md.
package main

import (
	"context"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/svcmain"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/app"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/config"
	"github.com/rs/zerolog"
)

func main() {
	svcmain.Main("mcp-tools", config.FromEnv,
		func(c *config.Config) (zerolog.Level, envconf.Tracing) { return c.LogLevel, c.Tracing },
		func(ctx context.Context, cfg *config.Config, log zerolog.Logger) (svcmain.App, error) {
			a, err := app.New(cfg, log, app.Deps{})
			if err != nil {
				return nil, err
			}
			return a, nil
		})
}

// Command mcp-tools is edgeguard's MCP tool server: an MCP endpoint
// (streamable HTTP) at /v1/mcp with role-gated tools, and the admin
// approval endpoints for dangerous tool calls. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/pkg/tracing"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/app"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/config"
	"github.com/rs/zerolog"
)

func main() {
	cfg, err := config.FromEnv()
	if err != nil {
		// one line naming the variable; never a secret value
		fmt.Fprintf(os.Stderr, "mcp-tools: configuration error: %v\n", err)
		os.Exit(2)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(redact.Writer(os.Stderr)).Level(cfg.LogLevel).With().Timestamp().Str("service", "mcp-tools").Logger()

	stopTracing, err := tracing.Start(cfg.Tracing, "mcp-tools")
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		os.Exit(2)
	}
	defer stopTracing()
	if cfg.Tracing.Enabled() {
		log.Info().Str("sampler", cfg.Tracing.Sampler).Float64("sampler_arg", cfg.Tracing.SamplerArg).Msg("traces exported over OTLP/HTTP")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(cfg, log, app.Deps{})
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		os.Exit(1)
	}
	defer a.Close()
	if err := a.Run(ctx); err != nil {
		log.Error().Err(err).Msg("server failed")
		os.Exit(1)
	}
}

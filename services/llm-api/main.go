// Command llm-api is edgeguard's LLM API service: API keys (management for
// users on the public listener, validation for the edge on the internal
// one), guest sessions, and the OpenAI-compatible proxy to the model
// upstream. See README.md.
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
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/rs/zerolog"
)

func main() {
	cfg, err := config.FromEnv()
	if err != nil {
		// one line naming the variable; never a secret value
		fmt.Fprintf(os.Stderr, "llm-api: configuration error: %v\n", err)
		os.Exit(2)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(redact.Writer(os.Stderr)).Level(cfg.LogLevel).With().Timestamp().Str("service", "llm-api").Logger()

	stopTracing, err := tracing.Start(cfg.Tracing, "llm-api")
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
	a, err := app.New(ctx, cfg, log, app.Deps{})
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

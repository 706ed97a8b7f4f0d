// Command media-api is edgeguard's media service: uploads sniffed to
// JPEG/PNG/GIF/WebP and owned by the authenticated subject, owner-only
// metadata and deletion, HMAC-signed download URLs, retention, and an
// optional ssrf-guarded remote fetch. See README.md.
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
	"github.com/edgeguard/edgeguard/services/media-api/internal/app"
	"github.com/edgeguard/edgeguard/services/media-api/internal/config"
	"github.com/rs/zerolog"
)

func main() {
	cfg, err := config.FromEnv()
	if err != nil {
		// one line naming the variable; never a secret value
		fmt.Fprintf(os.Stderr, "media-api: configuration error: %v\n", err)
		os.Exit(2)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(redact.Writer(os.Stderr)).Level(cfg.LogLevel).With().Timestamp().Str("service", "media-api").Logger()

	stopTracing, err := tracing.Start(cfg.Tracing, "media-api")
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

// Package svcmain is what every edgeguard service's main does around its
// own app: a refused configuration is one line per fault, each naming its
// variable, every fault at once (exit 2);
// the logger is JSON through the redacting writer (pkg/redact) at LOG_LEVEL;
// traces are exported when configured (pkg/tracing); the app runs until
// SIGINT or SIGTERM; start-up and serve failures exit 1.
package svcmain

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/redact"
	"github.com/edgeguard/edgeguard/pkg/tracing"
)

// App is a service's application: it serves until ctx ends.
type App interface {
	Run(ctx context.Context) error
	Close()
}

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // start-up or serving failed
	ExitConfig = 2 // configuration refused
)

// ConfigError writes the lines a refused configuration gets, one per fault
// (loaders join every fault they found, errors.Join: one per line), each
// naming its variable, never a secret value, and returns ExitConfig.
func ConfigError(w io.Writer, service string, err error) int {
	for fault := range strings.SplitSeq(err.Error(), "\n") {
		if fault = strings.TrimSpace(fault); fault != "" {
			fmt.Fprintf(w, "%s: configuration error: %s\n", service, fault)
		}
	}
	return ExitConfig
}

// Logger is the service's logger: JSON on w through the redacting writer,
// RFC 3339 times with nanoseconds, field service.
func Logger(w io.Writer, service string, level zerolog.Level) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(redact.Writer(w)).Level(level).With().Timestamp().Str("service", service).Logger()
}

// Run starts traces (when tr has an endpoint), builds the app with start and
// runs it until ctx ends, and returns the process's exit code.
func Run(ctx context.Context, log zerolog.Logger, service string, tr envconf.Tracing,
	start func(ctx context.Context, log zerolog.Logger) (App, error)) int {
	stopTracing, err := tracing.Start(tr, service)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return ExitConfig
	}
	defer stopTracing()
	if tr.Enabled() {
		log.Info().Str("sampler", tr.Sampler).Float64("sampler_arg", tr.SamplerArg).Msg("traces exported over OTLP/HTTP")
	}
	a, err := start(ctx, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return ExitFailed
	}
	defer a.Close()
	if err := a.Run(ctx); err != nil {
		log.Error().Err(err).Msg("server failed")
		return ExitFailed
	}
	return ExitOK
}

// Main is a service's whole main: load the configuration, then Run with a
// context cancelled by SIGINT/SIGTERM, and exit with its code. common picks
// the shared settings out of the service's configuration.
func Main[C any](service string, load func() (C, error), common func(C) (zerolog.Level, envconf.Tracing),
	start func(ctx context.Context, cfg C, log zerolog.Logger) (App, error)) {
	cfg, err := load()
	if err != nil {
		os.Exit(ConfigError(os.Stderr, service, err))
	}
	level, tr := common(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := Run(ctx, Logger(os.Stderr, service, level), service, tr, func(ctx context.Context, log zerolog.Logger) (App, error) {
		return start(ctx, cfg, log)
	})
	stop()
	os.Exit(code)
}

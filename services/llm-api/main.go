// Command llm-api is edgeguard's LLM API service: API keys (management for
// users on the public listener, validation for the edge on the internal
// one), guest sessions, and the OpenAI-compatible proxy to the model
// upstream. See README.md.
package main

import (
	"context"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/svcmain"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/app"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/config"
	"github.com/rs/zerolog"
)

func main() {
	svcmain.Main("llm-api", config.FromEnv,
		func(c *config.Config) (zerolog.Level, envconf.Tracing) { return c.LogLevel, c.Tracing },
		func(ctx context.Context, cfg *config.Config, log zerolog.Logger) (svcmain.App, error) {
			a, err := app.New(ctx, cfg, log, app.Deps{})
			if err != nil {
				return nil, err
			}
			return a, nil
		})
}

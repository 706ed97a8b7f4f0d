// Command media-api is edgeguard's media service: uploads sniffed to
// JPEG/PNG/GIF/WebP and owned by the authenticated subject, owner-only
// metadata and deletion, HMAC-signed download URLs, retention, and an
// optional ssrf-guarded remote fetch. See README.md.
package main

import (
	"context"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/svcmain"
	"github.com/edgeguard/edgeguard/services/media-api/internal/app"
	"github.com/edgeguard/edgeguard/services/media-api/internal/config"
	"github.com/rs/zerolog"
)

func main() {
	svcmain.Main("media-api", config.FromEnv,
		func(c *config.Config) (zerolog.Level, envconf.Tracing) { return c.LogLevel, c.Tracing },
		func(ctx context.Context, cfg *config.Config, log zerolog.Logger) (svcmain.App, error) {
			a, err := app.New(cfg, log, app.Deps{})
			if err != nil {
				return nil, err
			}
			return a, nil
		})
}

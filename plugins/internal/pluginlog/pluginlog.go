// Package pluginlog is the logger of the edge plugins: JSON on stderr (which
// Kong's plugin server collects into its error log, at [info]), with a
// timestamp and plugin=<name>, through the redaction writer — no JWT or API
// key can reach the log, whatever a caller logs by mistake. Nothing in the
// plugins logs per request.
package pluginlog

import (
	"os"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/redact"
)

// New returns the logger of the named plugin.
func New(plugin string) zerolog.Logger {
	return zerolog.New(redact.Writer(os.Stderr)).With().Timestamp().Str("plugin", plugin).Logger()
}

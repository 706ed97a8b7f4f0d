package app

import (
	"errors"

	"github.com/edgeguard/edgeguard/pkg/ssrf"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/config"
	"github.com/edgeguard/edgeguard/services/mcp-tools/internal/fetch"
)

// guardedClient returns fetch_url's client: pkg/ssrf's, which checks every
// dialed address (after DNS resolution, on every redirect) and ignores proxy
// settings. opts carries test seams (Resolver, InsecureAllowPrefixes); the
// time cap is FETCH_URL_TIMEOUT_SECONDS. The body is not capped here:
// package fetch reads only the first FETCH_URL_MAX_BYTES and closes, so a
// long page is cut rather than refused.
func guardedClient(cfg *config.Config, opts ssrf.Options) fetch.Doer {
	opts.Timeout = cfg.FetchTimeout
	opts.MaxBodyBytes = -1
	return ssrf.Client(opts)
}

// blocked reports whether a fetch error is a refused destination.
func blocked(err error) bool {
	return errors.Is(err, ssrf.ErrBlocked) || errors.Is(err, ssrf.ErrInvalidHost) || errors.Is(err, ssrf.ErrScheme)
}

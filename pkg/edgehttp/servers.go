package edgehttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout bounds a graceful shutdown of Servers.
const ShutdownTimeout = 10 * time.Second

// Servers are a service's two listeners: the public one (behind the edge)
// and the internal one (/internal/..., /healthz, /readyz, /metrics; never
// routed by Kong).
type Servers struct {
	Public, Internal *http.Server
	// PublicTLS, when set, serves the public listener over TLS with it
	// (pkg/mtls: the edge's client certificate required); nil is plain
	// HTTP (INSECURE_PLAIN_HTTP). The internal listener stays plain HTTP:
	// probes and Prometheus call it (docs/architecture.md "Workload
	// identity").
	PublicTLS *tls.Config
}

// Listen binds both addresses; an error names the variable that configures
// the one that failed (LISTEN_ADDR or INTERNAL_LISTEN_ADDR), and nothing
// stays bound. With PublicTLS the public listener is a TLS listener.
func (s Servers) Listen() (public, internal net.Listener, err error) {
	if public, err = net.Listen("tcp", s.Public.Addr); err != nil {
		return nil, nil, fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	if s.PublicTLS != nil {
		public = tls.NewListener(public, s.PublicTLS)
	}
	if internal, err = net.Listen("tcp", s.Internal.Addr); err != nil {
		_ = public.Close()
		return nil, nil, fmt.Errorf("INTERNAL_LISTEN_ADDR: %w", err)
	}
	return public, internal, nil
}

// Serve serves both until ctx ends or one of them fails, then shuts both
// down gracefully (ShutdownTimeout). It returns the failure, if any.
func (s Servers) Serve(ctx context.Context, public, internal net.Listener) error {
	errs := make(chan error, 2)
	for _, p := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{s.Public, public}, {s.Internal, internal}} {
		go func() {
			if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	_ = s.Public.Shutdown(sctx)
	_ = s.Internal.Shutdown(sctx)
	return runErr
}

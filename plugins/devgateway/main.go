// Command devgateway serves kong/kong.yml on one machine: a net/http
// reverse proxy running the same edgeguard plugin handlers Kong runs (see
// README.md and package devgw). It is the embedded default for local runs
// and tests, NOT a production gateway: production is Kong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/edgeguard/edgeguard/pkg/redact"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/clientip"
	"github.com/edgeguard/edgeguard/plugins/internal/devgw"
	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "devgateway:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devgateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config    = fs.String("config", "kong/kong.yml", "Kong DB-less declarative config to serve")
		listen    = fs.String("listen", "127.0.0.1:8000", "address to listen on")
		trusted   = fs.String("trusted-proxies", "", "comma-separated CIDRs or addresses whose X-Forwarded-For is believed (default: none)")
		maxBody   = fs.Int64("max-body-bytes", devgw.DefaultMaxBodyBytes, "cap on every request body, 413 above (kong.conf's nginx_http_client_max_body_size); 0: none")
		upstreams listFlag
		rewrites  listFlag
	)
	fs.Var(&upstreams, "upstream", "NAME=URL: serve kong.yml's service NAME from URL (repeatable)")
	fs.Var(&rewrites, "rewrite", "OLD=NEW: replace OLD with NEW in every plugin config string and service URL, in order (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	// Through the redacting writer like every other logger: the plugins log
	// through this one in the dev gateway (their instances' Log).
	log := zerolog.New(redact.Writer(stdout)).With().Timestamp().Str("component", "devgateway").Logger()
	opts := devgw.Options{MaxBodyBytes: *maxBody, Logger: &log, Upstreams: map[string]string{}}
	var err error
	if *trusted != "" {
		if opts.TrustedProxies, err = clientip.ParseTrusted(strings.Split(*trusted, ",")); err != nil {
			return fmt.Errorf("--trusted-proxies: %w", err)
		}
	}
	for _, u := range upstreams {
		name, url, err := devgw.ParseUpstream(u)
		if err != nil {
			return err
		}
		opts.Upstreams[name] = url
	}
	for _, r := range rewrites {
		rw, err := devgw.ParseRewrite(r)
		if err != nil {
			return err
		}
		opts.Rewrites = append(opts.Rewrites, rw)
	}
	if opts.Config, err = kongconf.Load(*config); err != nil {
		return err
	}
	gw, err := devgw.New(opts)
	if err != nil {
		return err
	}
	defer gw.Close()
	if n := gw.Warm(); n > 0 {
		log.Warn().Int("instances", n).Msg("misconfigured plugin instances answer 500 edge_misconfigured (reasons logged above)")
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second, // nginx's keepalive_timeout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("listen", ln.Addr().String()).Str("config", *config).
		Interface("services", gw.Services()).
		Msg("dev gateway listening (not a production gateway: production is Kong)")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info().Msg("dev gateway stopped")
	return nil
}

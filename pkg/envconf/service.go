package envconf

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/rs/zerolog"
)

// Service holds the settings every private service reads the same way.
type Service struct {
	// Strict (STRICT, default true) refuses missing, short or placeholder
	// secrets and insecure switches.
	Strict bool
	// ListenAddr (LISTEN_ADDR, default :8080) is the public listener;
	// InternalListenAddr (INTERNAL_LISTEN_ADDR, default :8081) serves
	// health, readiness and metrics and must differ from it.
	ListenAddr         string
	InternalListenAddr string
	// TrustedProxies (TRUSTED_PROXIES, default none) are the gateway
	// addresses whose X-Forwarded-For is believed; never every address.
	TrustedProxies []string
	// LogLevel (LOG_LEVEL, default info).
	LogLevel zerolog.Level
	// Secrets (SECRETS_SOURCES, default file,env) resolves every secret
	// read after Service; the app attaches its logger for the access
	// records (Secrets.Attach).
	Secrets *secrets.Resolver
	// SecretsRefresh (SECRETS_REFRESH_INTERVAL, default 30s, 0 off) is how
	// often secrets that rotate without a restart are read again.
	SecretsRefresh time.Duration
	// Tracing (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME,
	// OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG): off unless an
	// endpoint is set (pkg/tracing).
	Tracing Tracing
}

// SecretsSources is SECRETS_SOURCES' default.
const SecretsSources = "file,env"

// Service reads STRICT, LISTEN_ADDR, INTERNAL_LISTEN_ADDR, TRUSTED_PROXIES,
// LOG_LEVEL and the OTEL_* tracing variables, and sets l.Strict for the
// secrets read after it. Every fault is reported (errors.Join, one per
// variable); an unreadable STRICT counts as true for the checks after it.
func (l *Loader) Service() (Service, error) {
	var s Service
	var f Faults
	strict, err := l.Bool("STRICT", true)
	if !f.Add(err) {
		strict = true
	}
	s.Strict = strict
	l.Strict = s.Strict
	s.ListenAddr = l.Str("LISTEN_ADDR", ":8080")
	s.InternalListenAddr = l.Str("INTERNAL_LISTEN_ADDR", ":8081")
	if s.ListenAddr == s.InternalListenAddr {
		f.Add(errors.New("INTERNAL_LISTEN_ADDR: must differ from LISTEN_ADDR (internal endpoints listen on their own port)"))
	}
	s.TrustedProxies = l.List("TRUSTED_PROXIES", nil)
	for _, p := range s.TrustedProxies {
		if p == "*" || p == "0.0.0.0/0" || p == "::/0" {
			f.Add(errors.New("TRUSTED_PROXIES: must list the gateway's addresses, never every address"))
			break
		}
	}
	s.Secrets, err = l.sources()
	f.Add(err)
	s.SecretsRefresh, err = l.Duration("SECRETS_REFRESH_INTERVAL", 30*time.Second, 0, time.Hour)
	if f.Add(err) && s.SecretsRefresh > 0 && s.SecretsRefresh < time.Second {
		f.Add(errors.New("SECRETS_REFRESH_INTERVAL: 0 (off) or at least 1s"))
	}
	lvl := l.Str("LOG_LEVEL", "info")
	if s.LogLevel, err = zerolog.ParseLevel(lvl); err != nil || lvl == "" {
		f.Add(fmt.Errorf("LOG_LEVEL: %q is not one of trace, debug, info, warn, error", lvl))
	}
	s.Tracing = Tracing{
		Endpoint:    l.Str("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
		ServiceName: l.Str("OTEL_SERVICE_NAME", ""),
		Sampler:     l.Str("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
	}
	arg, err := parseRatio(l.Str("OTEL_TRACES_SAMPLER_ARG", ""))
	if f.Add(err) {
		s.Tracing.SamplerArg = arg
	} else {
		s.Tracing.SamplerArg = 1 // the default, so Validate judges the other variables alone
	}
	if s.Tracing.ServiceName != "" && !ServiceName(s.Tracing.ServiceName) {
		f.Add(errors.New("OTEL_SERVICE_NAME: must match [a-z0-9-]{1,64}"))
	}
	f.Add(s.Tracing.Validate())
	return s, f.Err()
}

// sources builds l.Secrets from SECRETS_SOURCES: file, env and the names
// of l.Backends, in the order given, each at most once.
func (l *Loader) sources() (*secrets.Resolver, error) {
	names := l.List("SECRETS_SOURCES", strings.Split(SecretsSources, ","))
	var bs []secrets.Backend
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("SECRETS_SOURCES: %q listed twice", n)
		}
		seen[n] = true
		switch n {
		case "file":
			bs = append(bs, secrets.File{Getenv: l.Getenv, ReadFile: l.ReadFile})
		case "env":
			bs = append(bs, secrets.Env{Getenv: l.Getenv})
		default:
			f := l.Backends[n]
			if f == nil {
				return nil, fmt.Errorf("SECRETS_SOURCES: %q is not a source of this service (file, env%s)", n, l.extraSources())
			}
			b, err := f(l)
			if err != nil {
				return nil, err
			}
			bs = append(bs, b)
		}
	}
	l.Secrets = secrets.NewResolver(bs...)
	return l.Secrets, nil
}

func (l *Loader) extraSources() string {
	var out []string
	for n := range l.Backends {
		out = append(out, n)
	}
	slices.Sort(out)
	if len(out) == 0 {
		return ""
	}
	return ", " + strings.Join(out, ", ")
}

// HTTPURL checks an absolute http(s) URL without credentials, a query or a
// fragment (issuers, JWKS and upstream URLs).
func HTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not carry credentials, a query or a fragment")
	}
	return nil
}

// ServiceName reports whether s is a service name: [a-z0-9-]{1,64}.
func ServiceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

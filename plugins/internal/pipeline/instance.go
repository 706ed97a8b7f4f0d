package pipeline

import (
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/plugins/internal/auditconf"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginlog"
)

// Plugin is a plugin configuration the runtime can run: Kong's plugin
// configs (keycloakjwt.Config …) and anything a test or another host builds.
type Plugin interface {
	// PluginName is the plugin's name (logs, audit source, metrics).
	PluginName() string
	// Pipeline is the configuration's pipeline, provisioned once
	// (Instance); an error means the configuration is invalid.
	Pipeline() (*Pipeline, error)
}

// Handle runs plugin p on one request of host: its pipeline, or the
// misconfigured answer. It is what every host calls (Kong through
// kongadapter.Access, tests directly).
func Handle(host exchange.Exchange, p Plugin) Outcome {
	pl, err := p.Pipeline()
	if err != nil {
		return Misconfigured(host)
	}
	return Run(host, pl)
}

// Instance is the runtime state of one plugin configuration (one Kong
// plugin instance). go-pdk has no configuration hook: Kong hands a plugin
// server its config as JSON when an instance starts and serves many
// requests on it concurrently, so the pipeline is provisioned on the
// instance's first request, once. A configuration that fails is logged once
// (and audited once, as config.rejected, when its audit section is usable)
// and every request on it answers 500 edge_misconfigured.
//
// Keep it in an unexported field of the Kong config struct (go-pdk's schema
// skips unexported fields). The zero Instance is ready; it must not be
// copied after first use.
type Instance struct {
	once sync.Once
	p    *Pipeline
	err  error

	audOnce sync.Once
	aud     *audit.Emitter

	// Log replaces the plugin's logger (stderr); tests set it.
	Log *zerolog.Logger
}

// Logger is the instance's logger for the named plugin.
func (in *Instance) Logger(plugin string) zerolog.Logger {
	if in.Log != nil {
		return *in.Log
	}
	return pluginlog.New(plugin)
}

// Get returns the pipeline compose builds, building it on first use with
// the instance's audit emitter (from auditOpts, the configuration's `audit`
// section; nil: audit off). A failure — of auditOpts' validation or of
// compose — is logged once and returned to every caller.
func (in *Instance) Get(plugin string, auditOpts *auditconf.Options, compose func() (*Pipeline, error)) (*Pipeline, error) {
	in.once.Do(func() {
		in.p, in.err = in.build(plugin, auditOpts, compose)
		if in.err != nil {
			l := in.Logger(plugin)
			l.Error().Err(in.err).Msg("invalid configuration: every request on this instance answers 500 edge_misconfigured")
			if em := in.Emitter(plugin, auditOpts); em != nil {
				em.Emit(audit.Event{Actor: audit.Actor{Subject: plugin}, Action: audit.ActionConfigRejected,
					Target: plugin, Outcome: audit.OutcomeFailure, Reason: CodeMisconfigured,
					Severity: audit.SeverityCritical, Source: plugin})
			}
		}
	})
	return in.p, in.err
}

func (in *Instance) build(plugin string, auditOpts *auditconf.Options, compose func() (*Pipeline, error)) (*Pipeline, error) {
	if err := auditOpts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s configuration: %w", plugin, err)
	}
	p, err := compose()
	if err != nil {
		return nil, err
	}
	return p.WithAudit(in.Emitter(plugin, auditOpts)), nil
}

// Build is a compose function for Instance.Get: provision a configuration
// into T, then compose T's pipeline.
func Build[T any](provision func() (T, error), compose func(T) *Pipeline) func() (*Pipeline, error) {
	return func() (*Pipeline, error) {
		t, err := provision()
		if err != nil {
			return nil, err
		}
		return compose(t), nil
	}
}

// Emitter is the instance's audit emitter, nil when auditOpts is unset. An
// unusable audit section is logged once and turns audit off for the
// instance (whose provisioning refuses it anyway).
func (in *Instance) Emitter(plugin string, auditOpts *auditconf.Options) *audit.Emitter {
	if !auditOpts.Set() {
		return nil
	}
	in.audOnce.Do(func() {
		var err error
		if in.aud, err = auditconf.Emitter(auditOpts, in.Logger(plugin)); err != nil {
			l := in.Logger(plugin)
			l.Error().Err(err).Msg("audit section unusable: this instance emits no audit events")
		}
	})
	return in.aud
}

package devgw

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/plugins/internal/allinone"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/headerguard"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakapikey"
	"github.com/edgeguard/edgeguard/plugins/internal/keycloakjwt"
	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginrt"
	"github.com/edgeguard/edgeguard/plugins/internal/redisratelimit"
)

// headerGuardPriority is header-guard's Kong priority (header-guard/main.go;
// DESIGN.md "Plugin priorities").
const headerGuardPriority = 1510

// step is one plugin of a route's chain.
type step interface {
	run(ex *Exchange)
}

// plugin is a decoded plugin instance of a route.
type plugin struct {
	name     string
	priority int
	step     step
}

// kind is a plugin the dev gateway runs: its Kong priority and how its
// kong.yml config becomes a step. log is the route's logger.
type kind struct {
	priority int
	build    func(name string, raw []byte, log zerolog.Logger) (step, error)
}

// kinds are the plugins the dev gateway runs: edgeguard's own (the same
// handlers Kong runs) and the Kong built-ins it emulates. Every other
// plugin in kong.yml is listed once at start-up as not emulated.
var kinds = map[string]kind{
	headerguard.Name:        {headerGuardPriority, edge(headerguard.New, (*headerguard.Config).Provision)},
	keycloakjwt.Name:        {keycloakjwt.Priority, edge(newOf[keycloakjwt.Config](keycloakjwt.New), (*keycloakjwt.Config).Provision)},
	keycloakapikey.Name:     {keycloakapikey.Priority, edge(newOf[keycloakapikey.Config](keycloakapikey.New), (*keycloakapikey.Config).Provision)},
	redisratelimit.Name:     {redisratelimit.Priority, edge(newOf[redisratelimit.Config](redisratelimit.New), (*redisratelimit.Config).Provision)},
	allinone.Name:           {allinone.Priority, edge(newOf[allinone.Config](allinone.New), (*allinone.Config).Provision)},
	"cors":                  {corsPriority, builtin(newCORS)},
	"request-size-limiting": {sizeLimitPriority, builtin(newSizeLimit)},
}

// newOf adapts go-pdk's `func New() interface{}` constructors.
func newOf[C any](newConfig func() interface{}) func() *C {
	return func() *C { return newConfig().(*C) }
}

// decodeConfig decodes a plugin's kong.yml config as Kong hands it to a
// go-pdk plugin server: the config as JSON, decoded with encoding/json into
// the plugin's New() (whose UnmarshalJSON, for edgeguard's plugins, applies
// kongjson's rule: null and all-null records are unset). Unknown keys are
// refused (Kong's schema validation would refuse them too) — by the decoder
// for the built-ins, by checkSchema for edgeguard's plugins, whose
// UnmarshalJSON the decoder's strictness does not reach.
func decodeConfig(raw []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

// checkSchema refuses what Kong's schema validation would: a key that is
// not in the schema go-pdk derives from the config type (kongconf.SchemaOf),
// or a value of the wrong type.
func checkSchema(raw []byte, config any) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	if err := kongconf.CheckConfig(kongconf.SchemaOf(config), m); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

// edge builds an edgeguard plugin's step from its Kong config type.
func edge[C any, H pluginrt.Handler](newConfig func() *C, provision func(*C) (H, error)) func(string, []byte, zerolog.Logger) (step, error) {
	return func(name string, raw []byte, log zerolog.Logger) (step, error) {
		c := newConfig()
		if err := checkSchema(raw, c); err != nil {
			return nil, err
		}
		if err := decodeConfig(raw, c); err != nil {
			return nil, err
		}
		s := &edgeStep{name: name, log: log, provision: func() (pluginrt.Handler, error) {
			h, err := provision(c)
			if err != nil {
				return nil, err
			}
			return h, nil
		}}
		if a, ok := any(c).(interface{ Auditor() pluginrt.Auditor }); ok {
			s.auditor = a.Auditor()
		}
		s.rt.Log = &s.log
		return s, nil
	}
}

// edgeStep runs one edgeguard plugin instance. It provisions the config once
// for the process, on the first request (or Warm), as Kong's plugin server
// does: a misconfigured instance answers every request 500
// edge_misconfigured and logs the reason once. It reads the provisioned
// handler's header limit, as pluginrt.Instance.Access does under Kong.
type edgeStep struct {
	name      string
	log       zerolog.Logger
	provision func() (pluginrt.Handler, error)
	rt        pluginrt.Instance[pluginrt.Handler]
	auditor   pluginrt.Auditor // nil: the config has no audit section
}

var _ step = (*edgeStep)(nil)

func (s *edgeStep) handler() (pluginrt.Handler, error) {
	return s.rt.GetAudited(s.name, s.provision, s.auditor)
}

func (s *edgeStep) run(ex *Exchange) {
	h, err := s.handler()
	if err != nil {
		ex.beginPlugin(0)
		pluginrt.Misconfigured(ex)
		return
	}
	ex.beginPlugin(h.MaxHeaders())
	defer func() {
		// As kongx.Serve: a panicking plugin fails closed, its upstream
		// writes dropped.
		if r := recover(); r != nil {
			s.log.Error().Str("panic", fmt.Sprint(r)).Msg("plugin handler panicked")
			ex.Upstream, ex.Clears = nil, nil
			exchange.Deny(ex, 500, "edge_error", "the gateway could not process the request", nil)
		}
	}()
	pluginrt.RunAudited(s.rt.Emitter(s.name, s.auditor), s.name, ex, h)
}

// builtin builds an emulated Kong plugin's step from its config.
func builtin[C any, S step](build func(C) (S, error)) func(string, []byte, zerolog.Logger) (step, error) {
	return func(_ string, raw []byte, _ zerolog.Logger) (step, error) {
		var c C
		if err := decodeConfig(raw, &c); err != nil {
			return nil, err
		}
		s, err := build(c)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// routePlugins returns the enabled plugins that apply to a route, with
// Kong's precedence for one plugin name (route, then service, then global),
// and the names the dev gateway does not run.
func routePlugins(c *kongconf.Config, service, route string) (map[string]map[string]any, []string) {
	out := map[string]map[string]any{}
	rank := map[string]int{}
	var unknown []string
	for _, name := range c.PluginNames() {
		for _, ref := range c.PluginConfigs(name) {
			if !ref.Enabled {
				continue // Kong does not load a disabled instance at all
			}
			r := 0
			switch {
			case ref.Route == route && ref.Route != "":
				r = 3
			case ref.Route == "" && ref.Service == service && ref.Service != "":
				r = 2
			case ref.Route == "" && ref.Service == "":
				r = 1
			}
			if r == 0 || r <= rank[name] {
				continue
			}
			rank[name] = r
			cfg := ref.Config
			if cfg == nil {
				cfg = map[string]any{}
			}
			out[name] = cfg
		}
		if _, ok := out[name]; ok {
			if _, known := kinds[name]; !known {
				unknown = append(unknown, name)
				delete(out, name)
			}
		}
	}
	return out, unknown
}

// buildChain decodes a route's plugins and orders them as Kong runs them:
// higher priority first, ties by name.
func buildChain(configs map[string]map[string]any, log zerolog.Logger) ([]plugin, error) {
	var chain []plugin
	for name, cfg := range configs {
		k := kinds[name]
		raw, err := json.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", name, err)
		}
		s, err := k.build(name, raw, log.With().Str("plugin", name).Logger())
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", name, err)
		}
		chain = append(chain, plugin{name: name, priority: k.priority, step: s})
	}
	sortChain(chain)
	return chain, nil
}

func sortChain(chain []plugin) {
	slices.SortFunc(chain, func(a, b plugin) int {
		if a.priority != b.priority {
			return cmp.Compare(b.priority, a.priority)
		}
		return cmp.Compare(a.name, b.name)
	})
}

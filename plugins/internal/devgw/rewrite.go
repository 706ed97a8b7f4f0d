package devgw

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/edgeguard/edgeguard/plugins/internal/kongconf"
)

// ErrFlag is wrapped by the errors of ParseRewrite and ParseUpstream.
var ErrFlag = errors.New("invalid flag value")

// Rewrite replaces every occurrence of Old with New in the strings of the
// plugin configs and the service URLs of kong.yml, so that the file written
// for containers (http://keycloak:8080/..., redis:6379,
// /etc/kong/secrets/...) runs on one machine. Rewrites apply in order, each
// to the result of the ones before.
type Rewrite struct {
	Old, New string
}

// ParseRewrite parses OLD=NEW (split at the first '='; NEW may be empty).
func ParseRewrite(s string) (Rewrite, error) {
	old, repl, ok := strings.Cut(s, "=")
	if !ok || old == "" {
		return Rewrite{}, fmt.Errorf("%w: rewrite %q is not OLD=NEW with a non-empty OLD", ErrFlag, s)
	}
	return Rewrite{Old: old, New: repl}, nil
}

// ParseUpstream parses NAME=URL, an override of a kong.yml service's URL.
func ParseUpstream(s string) (name, rawURL string, err error) {
	name, rawURL, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return "", "", fmt.Errorf("%w: upstream %q is not NAME=URL", ErrFlag, s)
	}
	if _, err := parseServiceURL(rawURL); err != nil {
		return "", "", fmt.Errorf("%w: upstream %s: %v", ErrFlag, name, err)
	}
	return name, rawURL, nil
}

func parseServiceURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a service URL has no query or fragment", s)
	}
	return u, nil
}

func rewriteString(s string, rules []Rewrite) string {
	for _, r := range rules {
		s = strings.ReplaceAll(s, r.Old, r.New)
	}
	return s
}

// rewriteValue applies the rules to every string in a decoded YAML value
// (map keys are left alone: they are schema field names).
func rewriteValue(v any, rules []Rewrite) any {
	switch t := v.(type) {
	case string:
		return rewriteString(t, rules)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = rewriteValue(e, rules)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = rewriteValue(e, rules)
		}
		return out
	}
	return v
}

// rewriteConfig returns a copy of c with the rules applied to its plugin
// configs (service URLs are rewritten where the gateway composes them). c
// itself is not modified.
func rewriteConfig(c *kongconf.Config, rules []Rewrite) *kongconf.Config {
	if len(rules) == 0 {
		return c
	}
	out := *c
	plugins := func(ps []kongconf.Plugin) []kongconf.Plugin {
		cp := slices.Clone(ps)
		for i := range cp {
			if cp[i].Config != nil {
				cp[i].Config = rewriteValue(cp[i].Config, rules).(map[string]any)
			}
		}
		return cp
	}
	routes := func(rs []kongconf.Route) []kongconf.Route {
		cp := slices.Clone(rs)
		for i := range cp {
			cp[i].Plugins = plugins(cp[i].Plugins)
		}
		return cp
	}
	out.Services = slices.Clone(c.Services)
	for i := range out.Services {
		s := &out.Services[i]
		s.Plugins = plugins(s.Plugins)
		s.Routes = routes(s.Routes)
	}
	out.Routes = routes(c.Routes)
	out.Plugins = plugins(c.Plugins)
	return &out
}

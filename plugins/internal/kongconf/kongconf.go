// Package kongconf reads Kong's DB-less declarative configuration
// (kong/kong.yml, _format_version "3.0"): services, their routes and the
// plugins attached to routes, services or globally, and the plugin schema a
// go-pdk plugin server prints with -dump, so the two can be checked against
// each other. The Kong suites and config tests read it.
//
// It reads strictly: an unknown key anywhere outside a plugin's config is an
// error (Kong would refuse it too, and a typo such as "strip_paths" must not
// silently change routing). It models the entities edgeguard uses, not all
// of Kong (services, routes, plugins, and for the mTLS hop to the services
// upstreams with targets, certificates and ca_certificates; no consumers):
// a file using others is refused rather than half understood. References
// between them (a service's client_certificate and ca_certificates) must
// name entities of the file. Plugin configs stay untyped (map[string]any)
// here; CheckConfig compares them with a plugin's schema.
package kongconf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// FormatVersion is the declarative format this package reads.
const FormatVersion = "3.0"

// ErrInvalid is wrapped by every validation error of Load and Parse.
var ErrInvalid = errors.New("invalid kong declarative config")

// Config is a declarative configuration.
type Config struct {
	FormatVersion string    `yaml:"_format_version"`
	Transform     *bool     `yaml:"_transform"`
	Services      []Service `yaml:"services"`
	// Routes are top-level routes; each names its service.
	Routes []Route `yaml:"routes"`
	// Plugins are top-level plugins: global, or attached with route/service.
	Plugins []Plugin `yaml:"plugins"`
	// Upstreams are load-balanced targets a service's host can name.
	Upstreams []Upstream `yaml:"upstreams"`
	// Certificates are certificates with their keys (a service's
	// client_certificate); CACertificates are CA certificates (a
	// service's ca_certificates).
	Certificates   []Certificate   `yaml:"certificates"`
	CACertificates []CACertificate `yaml:"ca_certificates"`
}

// Upstream is a virtual host name balanced over targets.
type Upstream struct {
	Name       string   `yaml:"name"`
	HostHeader string   `yaml:"host_header"`
	Algorithm  string   `yaml:"algorithm"`
	Targets    []Target `yaml:"targets"`
	Tags       []string `yaml:"tags"`
}

// Target is one address of an upstream (host:port).
type Target struct {
	Target string   `yaml:"target"`
	Weight *int     `yaml:"weight"`
	Tags   []string `yaml:"tags"`
}

// Certificate is a certificate and its key (PEM, or vault references).
type Certificate struct {
	ID      string   `yaml:"id"`
	Cert    string   `yaml:"cert"`
	Key     string   `yaml:"key"`
	CertAlt string   `yaml:"cert_alt"`
	KeyAlt  string   `yaml:"key_alt"`
	SNIs    []string `yaml:"snis"`
	Tags    []string `yaml:"tags"`
}

// CACertificate is one PEM CA certificate.
type CACertificate struct {
	ID   string   `yaml:"id"`
	Cert string   `yaml:"cert"`
	Tags []string `yaml:"tags"`
}

// Service is an upstream service with its nested routes and plugins.
type Service struct {
	Name           string   `yaml:"name"`
	URL            string   `yaml:"url"`
	Protocol       string   `yaml:"protocol"`
	Host           string   `yaml:"host"`
	Port           int      `yaml:"port"`
	Path           string   `yaml:"path"`
	Retries        *int     `yaml:"retries"`
	ConnectTimeout int      `yaml:"connect_timeout"`
	WriteTimeout   int      `yaml:"write_timeout"`
	ReadTimeout    int      `yaml:"read_timeout"`
	Enabled        *bool    `yaml:"enabled"`
	Tags           []string `yaml:"tags"`
	Routes         []Route  `yaml:"routes"`
	Plugins        []Plugin `yaml:"plugins"`
	// TLS to the upstream: the client certificate Kong presents, whether
	// it verifies the upstream's certificate, and against which CAs.
	ClientCertificate Ref      `yaml:"client_certificate"`
	TLSVerify         *bool    `yaml:"tls_verify"`
	TLSVerifyDepth    *int     `yaml:"tls_verify_depth"`
	CACertificates    []string `yaml:"ca_certificates"`
}

// Scheme is the service's protocol (from url or protocol; Kong's default
// http).
func (s *Service) Scheme() string {
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err == nil {
			return u.Scheme
		}
	}
	if s.Protocol == "" {
		return "http"
	}
	return s.Protocol
}

// Hostname is the service's host (from url or host).
func (s *Service) Hostname() string {
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err == nil {
			return u.Hostname()
		}
	}
	return s.Host
}

// Route matches requests to a service.
type Route struct {
	Name string `yaml:"name"`
	// Service names the route's service (top-level routes only).
	Service                 Ref                 `yaml:"service"`
	Protocols               []string            `yaml:"protocols"`
	Methods                 []string            `yaml:"methods"`
	Hosts                   []string            `yaml:"hosts"`
	Paths                   []string            `yaml:"paths"`
	Headers                 map[string][]string `yaml:"headers"`
	StripPath               *bool               `yaml:"strip_path"`
	PreserveHost            bool                `yaml:"preserve_host"`
	RegexPriority           int                 `yaml:"regex_priority"`
	PathHandling            string              `yaml:"path_handling"`
	HTTPSRedirectStatusCode int                 `yaml:"https_redirect_status_code"`
	RequestBuffering        *bool               `yaml:"request_buffering"`
	ResponseBuffering       *bool               `yaml:"response_buffering"`
	Tags                    []string            `yaml:"tags"`
	Plugins                 []Plugin            `yaml:"plugins"`
}

// StripPathOrDefault is strip_path with Kong's default (true).
func (r *Route) StripPathOrDefault() bool { return r.StripPath == nil || *r.StripPath }

// Plugin is a plugin instance.
type Plugin struct {
	Name         string         `yaml:"name"`
	InstanceName string         `yaml:"instance_name"`
	Config       map[string]any `yaml:"config"`
	Enabled      *bool          `yaml:"enabled"`
	Protocols    []string       `yaml:"protocols"`
	Tags         []string       `yaml:"tags"`
	// Route and Service attach a top-level plugin; nested plugins leave
	// them empty.
	Route   Ref `yaml:"route"`
	Service Ref `yaml:"service"`
}

// EnabledOrDefault is enabled with Kong's default (true).
func (p *Plugin) EnabledOrDefault() bool { return p.Enabled == nil || *p.Enabled }

// Ref names another entity: `service: llm-api` or `service: {name: llm-api}`
// (an id is kept as given).
type Ref string

// UnmarshalYAML accepts a scalar name or a mapping with name or id.
func (r *Ref) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*r = Ref(n.Value)
		return nil
	case yaml.MappingNode:
		var m struct {
			Name string `yaml:"name"`
			ID   string `yaml:"id"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		if m.Name != "" {
			*r = Ref(m.Name)
		} else {
			*r = Ref(m.ID)
		}
		return nil
	}
	return fmt.Errorf("line %d: a reference must be a name or {name: ...}", n.Line)
}

// PluginRef is one instance of a plugin and where it is attached.
type PluginRef struct {
	// Service is the service the plugin applies to ("" for a global
	// plugin); Route the route ("" for a service-wide or global plugin).
	Service string
	Route   string
	Enabled bool
	Config  map[string]any
}

// Load reads and validates a declarative config file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kong config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a declarative config.
func Parse(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalid)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	if c.FormatVersion != FormatVersion {
		return fmt.Errorf("_format_version is %q, want %q", c.FormatVersion, FormatVersion)
	}
	certs, cas, err := c.validateTLSEntities()
	if err != nil {
		return err
	}
	services := map[string]bool{}
	routes := map[string]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		at := fmt.Sprintf("services[%d]", i)
		if err := s.validate(); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if services[s.Name] {
			return fmt.Errorf("%s: duplicate service name %q", at, s.Name)
		}
		services[s.Name] = true
		if s.ClientCertificate != "" && !certs[string(s.ClientCertificate)] {
			return fmt.Errorf("%s: client_certificate %q is not a certificate of this file", at, s.ClientCertificate)
		}
		for _, id := range s.CACertificates {
			if !cas[id] {
				return fmt.Errorf("%s: ca_certificates names %q, not a ca_certificate of this file", at, id)
			}
		}
		if err := validatePlugins(s.Plugins, at); err != nil {
			return err
		}
		for j := range s.Routes {
			r := &s.Routes[j]
			rat := fmt.Sprintf("%s.routes[%d]", at, j)
			if r.Service != "" {
				return fmt.Errorf("%s: a nested route cannot name a service", rat)
			}
			if err := r.validate(routes); err != nil {
				return fmt.Errorf("%s: %w", rat, err)
			}
			if err := validatePlugins(r.Plugins, rat); err != nil {
				return err
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		at := fmt.Sprintf("routes[%d]", i)
		if !services[string(r.Service)] {
			return fmt.Errorf("%s: service %q is not defined", at, r.Service)
		}
		if err := r.validate(routes); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if err := validatePlugins(r.Plugins, at); err != nil {
			return err
		}
	}
	for i := range c.Plugins {
		p := &c.Plugins[i]
		at := fmt.Sprintf("plugins[%d]", i)
		if p.Service != "" && !services[string(p.Service)] {
			return fmt.Errorf("%s: service %q is not defined", at, p.Service)
		}
		if p.Route != "" && !routes[string(p.Route)] {
			return fmt.Errorf("%s: route %q is not defined", at, p.Route)
		}
	}
	if err := validatePlugins(c.Plugins, "plugins"); err != nil {
		return err
	}
	// A plugin attached twice to the same route or service (nested and
	// top-level) is refused by Kong too.
	seen := map[[3]string]bool{}
	for _, name := range c.PluginNames() {
		for _, ref := range c.PluginConfigs(name) {
			k := [3]string{name, ref.Service, ref.Route}
			if seen[k] {
				return fmt.Errorf("plugin %q is attached twice to service %q route %q", name, ref.Service, ref.Route)
			}
			seen[k] = true
		}
	}
	return nil
}

// validateTLSEntities checks upstreams, certificates and CA certificates
// and returns the ids of the latter two.
func (c *Config) validateTLSEntities() (certs, cas map[string]bool, err error) {
	certs, cas = map[string]bool{}, map[string]bool{}
	upstreams := map[string]bool{}
	for i, u := range c.Upstreams {
		at := fmt.Sprintf("upstreams[%d]", i)
		if u.Name == "" || upstreams[u.Name] {
			return nil, nil, fmt.Errorf("%s: upstream name %q empty or used twice", at, u.Name)
		}
		upstreams[u.Name] = true
		if len(u.Targets) == 0 {
			return nil, nil, fmt.Errorf("%s: upstream %q has no targets", at, u.Name)
		}
		for j, t := range u.Targets {
			host, port, err := net.SplitHostPort(t.Target)
			if err != nil || host == "" || port == "" {
				return nil, nil, fmt.Errorf("%s.targets[%d]: target %q is not host:port", at, j, t.Target)
			}
		}
	}
	for i, ct := range c.Certificates {
		at := fmt.Sprintf("certificates[%d]", i)
		if ct.ID == "" || certs[ct.ID] {
			return nil, nil, fmt.Errorf("%s: a certificate needs a unique id (services name it)", at)
		}
		if ct.Cert == "" || ct.Key == "" {
			return nil, nil, fmt.Errorf("%s: cert and key are required", at)
		}
		certs[ct.ID] = true
	}
	for i, ca := range c.CACertificates {
		at := fmt.Sprintf("ca_certificates[%d]", i)
		if ca.ID == "" || cas[ca.ID] {
			return nil, nil, fmt.Errorf("%s: a CA certificate needs a unique id (services name it)", at)
		}
		if strings.Count(ca.Cert, "-----BEGIN CERTIFICATE-----") != 1 {
			return nil, nil, fmt.Errorf("%s: cert must be exactly one PEM certificate (Kong refuses more)", at)
		}
		cas[ca.ID] = true
	}
	return certs, cas, nil
}

// Upstream returns the named upstream, or nil.
func (c *Config) Upstream(name string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}

func (s *Service) validate() error {
	if s.Name == "" {
		return errors.New("service without a name")
	}
	if s.URL == "" && s.Host == "" {
		return fmt.Errorf("service %q has neither url nor host", s.Name)
	}
	if s.URL != "" {
		if s.Host != "" || s.Protocol != "" || s.Port != 0 || s.Path != "" {
			return fmt.Errorf("service %q: url excludes protocol/host/port/path", s.Name)
		}
		u, err := url.Parse(s.URL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("service %q: url %q is not an absolute http(s) URL", s.Name, s.URL)
		}
	}
	return nil
}

func (r *Route) validate(names map[string]bool) error {
	if r.Name == "" {
		return errors.New("route without a name")
	}
	if names[r.Name] {
		return fmt.Errorf("duplicate route name %q", r.Name)
	}
	names[r.Name] = true
	if len(r.Paths) == 0 && len(r.Hosts) == 0 && len(r.Methods) == 0 && len(r.Headers) == 0 {
		return fmt.Errorf("route %q matches nothing (no paths, hosts, methods or headers)", r.Name)
	}
	for _, p := range r.Paths {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "~/") {
			return fmt.Errorf("route %q: path %q must start with / (or ~/ for a regex)", r.Name, p)
		}
	}
	for _, m := range r.Methods {
		if m == "" || strings.ToUpper(m) != m {
			return fmt.Errorf("route %q: method %q must be upper case", r.Name, m)
		}
	}
	return nil
}

func validatePlugins(ps []Plugin, at string) error {
	for i := range ps {
		if ps[i].Name == "" {
			return fmt.Errorf("%s.plugins[%d]: plugin without a name", at, i)
		}
	}
	return nil
}

// PluginNames returns the distinct plugin names used, in order of first use.
func (c *Config) PluginNames() []string {
	var out []string
	add := func(ps []Plugin) {
		for _, p := range ps {
			if !contains(out, p.Name) {
				out = append(out, p.Name)
			}
		}
	}
	for _, s := range c.Services {
		add(s.Plugins)
		for _, r := range s.Routes {
			add(r.Plugins)
		}
	}
	for _, r := range c.Routes {
		add(r.Plugins)
	}
	add(c.Plugins)
	return out
}

// PluginConfigs returns every instance of the named plugin with where it is
// attached, in file order: services (their own plugins, then their routes'),
// top-level routes, then top-level plugins.
func (c *Config) PluginConfigs(name string) []PluginRef {
	var out []PluginRef
	add := func(ps []Plugin, service, route string) {
		for _, p := range ps {
			if p.Name != name {
				continue
			}
			svc, rt := service, route
			if p.Service != "" {
				svc = string(p.Service)
			}
			if p.Route != "" {
				rt = string(p.Route)
				if svc == "" {
					svc = c.serviceOf(rt)
				}
			}
			out = append(out, PluginRef{Service: svc, Route: rt, Enabled: p.EnabledOrDefault(), Config: p.Config})
		}
	}
	for _, s := range c.Services {
		add(s.Plugins, s.Name, "")
		for _, r := range s.Routes {
			add(r.Plugins, s.Name, r.Name)
		}
	}
	for _, r := range c.Routes {
		add(r.Plugins, string(r.Service), r.Name)
	}
	add(c.Plugins, "", "")
	return out
}

// serviceOf returns the service of the named route, or "".
func (c *Config) serviceOf(route string) string {
	for _, s := range c.Services {
		for _, r := range s.Routes {
			if r.Name == route {
				return s.Name
			}
		}
	}
	for _, r := range c.Routes {
		if r.Name == route {
			return string(r.Service)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

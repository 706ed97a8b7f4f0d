package devgw

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// corsPriority is Kong's priority of its cors plugin: it runs before every
// edgeguard plugin, so preflights never reach authentication.
const corsPriority = 2000

// corsConfig is Kong 3.9's cors configuration (kong/plugins/cors/schema.lua).
type corsConfig struct {
	Origins           []string `json:"origins"`
	Headers           []string `json:"headers"`
	ExposedHeaders    []string `json:"exposed_headers"`
	Methods           []string `json:"methods"`
	MaxAge            *float64 `json:"max_age"`
	Credentials       bool     `json:"credentials"`
	PrivateNetwork    bool     `json:"private_network"`
	PreflightContinue bool     `json:"preflight_continue"`
}

// corsDefaultMethods is Kong's default Access-Control-Allow-Methods.
const corsDefaultMethods = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"

// corsOrigin is one configured origin: a normalized origin compared
// exactly, or (when it has characters an origin cannot have) an anchored
// regular expression, as Kong treats it.
type corsOrigin struct {
	plain string
	re    *regexp.Regexp
}

// cors is Kong's cors plugin: preflights (OPTIONS with Origin and
// Access-Control-Request-Method) are answered 200 here unless
// preflight_continue; every other response gets the CORS response headers.
type cors struct {
	conf     corsConfig
	allowAll bool   // no origins, or only "*"
	single   string // exactly one plain origin: sent as is
	origins  []corsOrigin
	methods  string
	headers  string
	exposed  string
	maxAge   string
}

var _ step = (*cors)(nil)

// regexMagic is what makes Kong treat an origin as a regex.
var regexMagic = regexp.MustCompile(`[^A-Za-z0-9.:/-]`)

// anyOrigin is "*" among other origins.
var anyOrigin = regexp.MustCompile(`^.*$`)

func newCORS(c corsConfig) (*cors, error) {
	p := &cors{conf: c, methods: corsDefaultMethods}
	switch {
	case len(c.Origins) == 0 || (len(c.Origins) == 1 && c.Origins[0] == "*"):
		p.allowAll = true
	case len(c.Origins) == 1 && !regexMagic.MatchString(c.Origins[0]):
		p.single = c.Origins[0]
	}
	for _, o := range c.Origins {
		if o == "*" {
			p.origins = append(p.origins, corsOrigin{re: anyOrigin})
			continue
		}
		if regexMagic.MatchString(o) {
			expr := strings.TrimPrefix(o, "^")
			if !strings.HasSuffix(expr, "$") {
				expr += "$"
			}
			re, err := regexp.Compile("^(?:" + expr + ")")
			if err != nil {
				return nil, fmt.Errorf("cors: origin %q is not a valid regular expression: %w", o, err)
			}
			p.origins = append(p.origins, corsOrigin{re: re})
			continue
		}
		p.origins = append(p.origins, corsOrigin{plain: normalizeOrigin(o)})
	}
	if len(c.Methods) > 0 {
		p.methods = strings.Join(c.Methods, ",")
	}
	p.headers = strings.Join(c.Headers, ",")
	p.exposed = strings.Join(c.ExposedHeaders, ",")
	if c.MaxAge != nil {
		p.maxAge = strconv.FormatFloat(*c.MaxAge, 'f', -1, 64)
	}
	return p, nil
}

// normalizeOrigin is Kong's: scheme://host[:port], default ports dropped.
func normalizeOrigin(o string) string {
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return o
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	scheme := strings.ToLower(u.Scheme)
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	if scheme == "" {
		return host
	}
	return scheme + "://" + host
}

func (p *cors) run(ex *Exchange) {
	preflight := ex.Method() == "OPTIONS" && ex.Header("origin") != "" &&
		ex.Header("access-control-request-method") != ""
	if preflight && p.conf.PreflightContinue {
		return // the upstream answers the preflight; Kong adds nothing
	}
	h := map[string]string{}
	vary := p.origin(ex, h)
	p.credentials(ex, h, &vary)
	if vary {
		ex.addResponseHeader("Vary", "Origin")
	}
	if !preflight {
		if p.exposed != "" {
			h["Access-Control-Expose-Headers"] = p.exposed
		}
		for k, v := range h {
			ex.SetResponseHeader(k, v)
		}
		return
	}
	if p.headers != "" {
		h["Access-Control-Allow-Headers"] = p.headers
	} else if acrh := ex.Header("access-control-request-headers"); acrh != "" {
		h["Access-Control-Allow-Headers"] = acrh
	}
	h["Access-Control-Allow-Methods"] = p.methods
	if p.maxAge != "" {
		h["Access-Control-Max-Age"] = p.maxAge
	}
	if p.conf.PrivateNetwork && ex.Header("access-control-request-private-network") == "true" {
		h["Access-Control-Allow-Private-Network"] = "true"
	}
	ex.Exit(200, nil, h)
}

// origin sets Access-Control-Allow-Origin as Kong does and reports whether
// the answer depends on the request's Origin (Vary: Origin).
func (p *cors) origin(ex *Exchange, h map[string]string) bool {
	if p.allowAll {
		h["Access-Control-Allow-Origin"] = "*"
		return false
	}
	if p.single != "" {
		h["Access-Control-Allow-Origin"] = p.single
		return true
	}
	reqOrigin := ex.Header("origin")
	if reqOrigin == "" {
		return true
	}
	norm := normalizeOrigin(reqOrigin)
	for _, o := range p.origins {
		if (o.re != nil && o.re.MatchString(norm)) || (o.re == nil && o.plain == norm) {
			h["Access-Control-Allow-Origin"] = reqOrigin
			return true
		}
	}
	return true
}

// credentials sets Access-Control-Allow-Credentials; with a wildcard
// origin the request's Origin is mirrored instead (a browser refuses
// credentials with "*").
func (p *cors) credentials(ex *Exchange, h map[string]string, vary *bool) {
	if !p.conf.Credentials {
		return
	}
	if !p.allowAll {
		h["Access-Control-Allow-Credentials"] = "true"
		return
	}
	if o := ex.Header("origin"); o != "" {
		h["Access-Control-Allow-Origin"] = o
		h["Access-Control-Allow-Credentials"] = "true"
		*vary = true
	}
}

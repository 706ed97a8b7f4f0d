package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/httpmetrics"
	"github.com/edgeguard/edgeguard/pkg/jwtauth"
	"github.com/edgeguard/edgeguard/pkg/jwtauth/jwttest"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keys"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/server"
	"github.com/rs/zerolog"
)

const internalToken = "it-0123456789abcdef0123456789abcdef-internal"

var (
	pepperCur  = []byte("pepper-current-0123456789abcdef0123456789")
	pepperPrev = []byte("pepper-previous-0123456789abcdef012345678")
)

type harness struct {
	t        testing.TB
	idp      *jwttest.IdP
	store    *keystest.MemStore
	roles    *keystest.Roles
	pub      *keystest.Publisher
	sweeper  *keys.Sweeper
	usage    *keys.Usage
	svc      *keys.Service
	public   http.Handler
	internal http.Handler
	metrics  *httpmetrics.Metrics
	logs     *testenv.Buffer
	// with options.budgets: the entitlement service on the real Redis
	// (budgets), its PostgreSQL side and the ledger in memory (over)
	ent     *entitlement.Service
	budgets *budget.Store
	over    *memBudgets

	mu  sync.Mutex
	now time.Time
}

type options struct {
	maxPerUser   int
	newKey       func(env string) (apikey.Key, error)
	peppers      *apikey.Peppers
	includeEmail bool
	authOff      bool
	store        *keystest.MemStore
	// auth replaces the JWT authenticator (X-Edge-Identity tests).
	auth edgehttp.Authenticator
	// guests turns the guest routes on; trusted sets TRUSTED_PROXIES.
	guests  func(log zerolog.Logger) *guests.Service
	trusted []string
	// llm serves the /v1 model routes (package llmproxy).
	llm http.Handler
	// audit receives the handlers' audit events (nil: off).
	audit *audit.Emitter
	// token and previous replace the internal token (rotation tests).
	token, previous *secrets.Value
	// budgets turns the budget routes on (testBudgets on the real Redis);
	// wrapAuth wraps the authenticator (API-key callers of /v1/usage).
	budgets  bool
	wrapAuth func(edgehttp.Authenticator) edgehttp.Authenticator
}

func newHarness(t testing.TB, o options) *harness {
	t.Helper()
	h := &harness{t: t, idp: jwttest.New(t), store: o.store, roles: keystest.NewRoles(), pub: &keystest.Publisher{},
		logs: &testenv.Buffer{}, now: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}
	if h.store == nil {
		h.store = keystest.NewMemStore()
	}
	log := zerolog.New(h.logs).Level(zerolog.DebugLevel)
	h.roles.Set(keys.Owner{Subject: "alice", Username: "alice", Email: "alice@example.com", Enabled: true,
		RealmRoles: []string{"user", "offline_access", "admin"}})
	h.roles.Set(keys.Owner{Subject: "bob", Username: "bob", Enabled: true, RealmRoles: []string{"user"}})
	peppers := o.peppers
	if peppers == nil {
		var err error
		if peppers, err = apikey.NewPeppers(apikey.Pepper{ID: "cur", Secret: pepperCur}); err != nil {
			t.Fatal(err)
		}
	}
	h.sweeper = keys.NewSweeper(h.store, h.pub, time.Second, h.clock, log)
	h.usage = keys.NewUsage(h.store, time.Hour, log)
	var err error
	var kb keys.Budgets
	if o.budgets {
		h.budgetsOn(t, log)
		kb = h.ent
	}
	h.svc, err = keys.New(keys.Config{Store: h.store, Roles: h.roles, Peppers: peppers, Revoked: h.sweeper, Usage: h.usage, Budgets: kb,
		MaxPerUser: o.maxPerUser, IncludeEmail: o.includeEmail, Now: h.clock, NewKey: o.newKey, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	v, err := jwtauth.New(jwtauth.Config{Issuers: []jwtauth.Issuer{{Issuer: h.idp.Issuer, JWKSURL: h.idp.JWKSURL()}},
		Audiences: []string{"jan-api"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	// the server's own route policies apply: only the authenticator is the
	// test's
	var auth edgehttp.Authenticator = &edgehttp.JWT{Verifier: v}
	if o.auth != nil {
		auth = o.auth
	}
	if o.wrapAuth != nil {
		auth = o.wrapAuth(auth)
	}
	if o.authOff {
		auth = nil
	}
	h.metrics = httpmetrics.New("llm-api")
	if o.token == nil {
		o.token = secrets.Static([]byte(internalToken))
	}
	cfg := server.Config{Metrics: h.metrics, Keys: h.svc, Authenticator: auth, InternalToken: o.token, InternalTokenPrevious: o.previous, IncludeEmail: o.includeEmail,
		Ready: func(context.Context) error { return h.store.Fail }, Logger: log, TrustedProxies: o.trusted,
		LLM: o.llm, Audit: o.audit}
	if o.budgets {
		cfg.Budgets, cfg.Usage = h.ent, h.over
	}
	if o.guests != nil {
		cfg.Guests = o.guests(log)
	}
	if h.public, err = server.Public(cfg); err != nil {
		t.Fatal(err)
	}
	if h.internal, err = server.Internal(cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// token mints an access token for sub with realm roles.
func (h *harness) token(sub string, roles ...string) string {
	return h.idp.Token(h.t, sub, map[string]any{"realm_access": map[string]any{"roles": roles}})
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) code() string {
	var b edgehttp.ErrorBody
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func serve(hd http.Handler, method, path string, body io.Reader, header map[string]string) resp {
	req := httptest.NewRequest(method, path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	hd.ServeHTTP(w, req)
	return resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// api calls the public router with a bearer token ("" for none).
func (h *harness) api(method, path, token, body string) resp {
	hdr := map[string]string{}
	if token != "" {
		hdr["Authorization"] = "Bearer " + token
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return serve(h.public, method, path, r, hdr)
}

// validate calls the internal validate endpoint with the internal token.
func (h *harness) validate(key string) resp {
	b, _ := json.Marshal(map[string]string{"key": key})
	return serve(h.internal, http.MethodPost, "/internal/api-keys/validate", bytes.NewReader(b),
		map[string]string{"X-Internal-Token": internalToken})
}

type created struct {
	server.KeyView
	Key string `json:"key"`
}

// create makes a key through the API and fails the test otherwise.
func (h *harness) create(token, body string) created {
	h.t.Helper()
	r := h.api(http.MethodPost, "/auth/api-keys", token, body)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create: %d %s", r.status, r.body)
	}
	var c created
	r.json(h.t, &c)
	return c
}

func init() { testenv.RecordSecret(internalToken) } // the run's secret sweep (scripts/test.sh)

// Package metering puts llm-api's token budgets (package budget) in front
// of the model server (package llmproxy): before a request is proxied it
// reserves the most the request can consume against every scope that
// applies, in one Redis round trip; it sends the upstream exactly the
// reserved completion cap; after the answer it settles the actual usage
// (plain answers, streams, aborted and failed streams) and writes it to the
// usage ledger. Refusals follow OpenAI's conventions (429 with the
// x-ratelimit-*-tokens headers, Retry-After and an OpenAI-shaped error), so
// SDKs handle them.
//
// It does not authenticate (pkg/edgehttp runs first and puts the identity
// in the request's context) and does not count requests (the edge does).
package metering

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmproxy"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmrequest"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/llmusage"
	"github.com/rs/zerolog"
)

// Codes of the answers (besides llmrequest's and llmproxy's).
const (
	CodeModelNotAllowed      = "model_not_allowed"
	CodeBudgetNotConfigured  = "budget_not_configured"
	CodeBudgetUnavailable    = "budget_unavailable"
	CodeTokensRateLimited    = "tokens_per_minute_exceeded"
	CodeTokenBudgetExhausted = "token_budget_exhausted"
	CodeCostBudgetExhausted  = "cost_budget_exhausted"
	CodeRequestTooLarge      = "request_exceeds_budget"
)

// Policies for a Redis that does not answer (LLM_BUDGET_ON_REDIS_ERROR).
const (
	OnRedisErrorDeny  = "deny"
	OnRedisErrorAllow = "allow"
)

// Ledger stores settled entries; Record must not block for long
// (ledger.Writer batches).
type Ledger interface {
	Record(ledger.Entry)
}

// The ledger's statuses, as metering decides them.
const (
	StatusSettled   = ledger.StatusSettled
	StatusAborted   = ledger.StatusAborted
	StatusNoUsage   = ledger.StatusNoUsage
	StatusFailed    = ledger.StatusFailed
	StatusRefused   = ledger.StatusRefused
	StatusSwept     = ledger.StatusSwept
	StatusUnmetered = ledger.StatusUnmetered
)

// Config configures a Handler.
type Config struct {
	Budgets budget.Config
	// Store is the Redis side; required.
	Store *budget.Store
	// Upstream is the model server's proxy (llmproxy.Proxy).
	Upstream http.Handler
	// Options gives a model's template overhead and image cost (nil:
	// the budgets file's models section, Budgets.Options).
	Options func(model string) llmrequest.Options
	// MaxBodyBytes bounds a request body (default llmproxy's).
	MaxBodyBytes int64
	// OnRedisError is OnRedisErrorDeny (default) or OnRedisErrorAllow.
	OnRedisError string
	Ledger       Ledger
	Metrics      *Metrics
	// Exhausted is told of a refusal by a period budget (audit).
	Exhausted func(r *http.Request, d *budget.Denial)
	Logger    zerolog.Logger
	// SettleTimeout bounds a settlement after the client has gone
	// (default 5 s).
	SettleTimeout time.Duration
}

// Handler meters the model endpoints; every other request goes to the
// upstream as is.
type Handler struct {
	cfg      Config
	settling sync.WaitGroup
	pending  pendingSettles
}

// Close waits for the settlements still running (call it before closing
// the store's Redis client and the ledger).
func (h *Handler) Close() { h.settling.Wait() }

// pendingSettles counts this replica's settlements still running per
// subject, so a refusal caused by them can wait for them (a client's next
// request usually follows its answer at once).
type pendingSettles struct {
	mu sync.Mutex
	m  map[string]*pendingSubject
}

type pendingSubject struct {
	n    int
	done chan struct{}
}

func (p *pendingSettles) add(sub string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*pendingSubject{}
	}
	ps := p.m[sub]
	if ps == nil {
		ps = &pendingSubject{done: make(chan struct{})}
		p.m[sub] = ps
	}
	ps.n++
}

func (p *pendingSettles) finish(sub string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.m[sub]
	if ps == nil {
		return
	}
	if ps.n--; ps.n == 0 {
		close(ps.done)
		delete(p.m, sub)
	}
}

// wait waits up to d for sub's running settlements (none: at once).
func (p *pendingSettles) wait(sub string, d time.Duration) {
	p.mu.Lock()
	ps := p.m[sub]
	p.mu.Unlock()
	if ps == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ps.done:
	case <-t.C:
	}
}

// settleWait bounds the wait for a subject's own running settlements
// before a refusal they cause is answered.
const settleWait = 100 * time.Millisecond

// New checks cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Upstream == nil {
		return nil, errors.New("metering: store and upstream are required")
	}
	if cfg.OnRedisError == "" {
		cfg.OnRedisError = OnRedisErrorDeny
	}
	if cfg.OnRedisError != OnRedisErrorDeny && cfg.OnRedisError != OnRedisErrorAllow {
		return nil, errors.New("metering: on-redis-error must be deny or allow")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = llmproxy.DefaultMaxBodyBytes
	}
	if cfg.Options == nil {
		cfg.Options = cfg.Budgets.Options
	}
	if cfg.SettleTimeout <= 0 {
		cfg.SettleTimeout = 5 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	return &Handler{cfg: cfg}, nil
}

func endpoint(path string) llmrequest.Endpoint {
	switch path {
	case "/v1/chat/completions":
		return llmrequest.Chat
	case "/v1/completions":
		return llmrequest.Completions
	case "/v1/embeddings":
		return llmrequest.Embeddings
	}
	return 0
}

// NewID returns a reservation id: 16 random bytes, hex.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP meters one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := edgehttp.IdentityFrom(r.Context())
	if !ok || id == nil {
		openAIError(w, http.StatusUnauthorized, "invalid_request_error", "credential_missing", "", "no verified identity")
		return
	}
	grant, err := h.cfg.Budgets.Grant(id.RealmRoles)
	if err != nil {
		// no budget for the roles: an administrator's override may give one
		o := h.override(r, id)
		if o == nil {
			openAIError(w, http.StatusForbidden, "invalid_request_error", CodeBudgetNotConfigured, "",
				"no budget is configured for your roles")
			return
		}
		grant = budget.Grant{Limits: o.Limits, Models: o.Models}
	}
	if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		h.models(w, r, id, grant)
		return
	}
	ep := endpoint(r.URL.Path)
	if ep == 0 || r.Method != http.MethodPost {
		h.cfg.Upstream.ServeHTTP(w, r)
		return
	}
	h.meter(w, r, ep, id, grant)
}

func (h *Handler) meter(w http.ResponseWriter, r *http.Request, ep llmrequest.Endpoint, id *identity.Identity, grant budget.Grant) {
	log := zerolog.Ctx(r.Context())
	if r.ContentLength > h.cfg.MaxBodyBytes {
		openAIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", llmproxy.CodeBodyTooLarge, "", "request body too large")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			openAIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", llmproxy.CodeBodyTooLarge, "", "request body too large")
			return
		}
		openAIError(w, http.StatusBadRequest, "invalid_request_error", llmproxy.CodeInvalidBody, "", "request body could not be read")
		return
	}
	if !llmproxy.IsJSONObject(body) {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", llmproxy.CodeInvalidBody, "", "request body must be one JSON object")
		return
	}
	plan, err := llmrequest.Analyze(ep, body, h.cfg.Options)
	if err != nil {
		var re *llmrequest.Error
		if errors.As(err, &re) {
			openAIError(w, http.StatusBadRequest, "invalid_request_error", re.Code, re.Param, re.Message)
			return
		}
		openAIError(w, http.StatusBadRequest, "invalid_request_error", llmrequest.CodeInvalidRequest, "", "invalid request")
		return
	}
	if !grant.Allows(plan.Model) && !h.override(r, id).allows(plan.Model) {
		h.cfg.Metrics.denied("model", "model")
		openAIError(w, http.StatusForbidden, "invalid_request_error", CodeModelNotAllowed, "model",
			"you may not use this model")
		return
	}
	if plan.PromptTokens > budget.MaxRequestTokens || plan.Cap > budget.MaxRequestTokens/plan.N {
		openAIError(w, http.StatusBadRequest, "invalid_request_error", CodeRequestTooLarge, "",
			"the request asks for more tokens than any budget allows")
		return
	}
	req := budget.Request{
		ID: NewID(), Subject: id.Subject, KeyID: id.APIKeyID, Model: plan.Model,
		PromptTokens: plan.PromptTokens, N: plan.N, Cap: plan.Cap, Price: h.cfg.Budgets.Prices[plan.Model],
		Scopes: []budget.Scope{{Kind: "user", Part: "u", Limits: grant.Limits, Stored: true}},
	}
	if ep != llmrequest.Embeddings {
		req.DefaultCap = h.cfg.Budgets.DefaultMaxCompletionTokens
	}
	if id.APIKeyID != "" {
		req.Scopes = append(req.Scopes, budget.Scope{Kind: "key", Part: "k:" + id.APIKeyID, Stored: true})
	}
	if ml, ok := grant.ModelLimits[plan.Model]; ok {
		req.Scopes = append(req.Scopes, budget.Scope{Kind: "model", Part: "m:" + plan.Model, Limits: ml})
	}
	granted, denial, err := h.cfg.Store.Reserve(r.Context(), req)
	if err == nil && denial != nil && denial.InFlight > 0 {
		// refused by reservations in flight: this replica's own
		// settlements may be running (or may have just landed) — wait for
		// them and try once more
		h.pending.wait(req.Subject, settleWait)
		granted, denial, err = h.cfg.Store.Reserve(r.Context(), req)
	}
	res := reservation{Reservation: granted}
	var mna *budget.ModelNotAllowedError
	switch {
	case errors.As(err, &mna):
		h.cfg.Metrics.denied(mna.Scope, "model")
		openAIError(w, http.StatusForbidden, "invalid_request_error", CodeModelNotAllowed, "model",
			"you may not use this model")
		return
	case errors.Is(err, budget.ErrInvalidRequest):
		openAIError(w, http.StatusBadRequest, "invalid_request_error", CodeRequestTooLarge, "",
			"the request asks for more tokens than any budget allows")
		return
	case err != nil:
		if h.cfg.OnRedisError != OnRedisErrorAllow {
			h.cfg.Metrics.reservation("unavailable")
			log.Error().Err(err).Str("reason", CodeBudgetUnavailable).Msg("budget store unavailable: request refused (LLM_BUDGET_ON_REDIS_ERROR=deny)")
			openAIError(w, http.StatusServiceUnavailable, "server_error", CodeBudgetUnavailable, "",
				"usage budgets cannot be checked right now; retry shortly")
			return
		}
		h.cfg.Metrics.reservation("unmetered")
		log.Warn().Err(err).Str("reason", "budget_unmetered").Msg("budget store unavailable: request allowed and charged to the ledger only (LLM_BUDGET_ON_REDIS_ERROR=allow)")
		res = unmetered(req)
	case denial != nil:
		h.deny(w, r, denial)
		return
	default:
		h.cfg.Metrics.reservation("granted")
	}
	if res.Headers.Limit >= 0 {
		setTokenHeaders(w.Header(), res.Headers)
	}
	out, err := plan.Rewrite(res.Cap)
	if err != nil {
		// Analyze accepted it: not reachable; never proxy an unbounded body
		h.settleFull(r, res, StatusFailed)
		openAIError(w, http.StatusInternalServerError, "server_error", "internal_error", "", "internal error")
		return
	}
	if !res.unmetered {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.cfg.SettleTimeout)
			defer cancel()
			if err := h.cfg.Store.Track(ctx, res.Reservation); err != nil {
				log.Warn().Err(err).Msg("budget reservation not indexed for the sweep (it stays charged in full if never settled)")
			}
		}()
	}
	x := &exchange{includeUsage: plan.IncludeUsage, choices: int(plan.Choices), prompts: int(plan.Prompts)}
	r2 := r.Clone(llmproxy.WithObserver(r.Context(), x))
	r2.Body = io.NopCloser(bytes.NewReader(out))
	r2.ContentLength = int64(len(out))
	r2.Header.Set("Content-Length", strconv.Itoa(len(out)))
	// The settlement runs after the answer, beside it: the handler (and
	// its connection, which Kong may reuse at once) is not held for it.
	// Started from a defer: when a stream breaks after its headers were
	// sent, httputil.ReverseProxy panics with http.ErrAbortHandler (the
	// server drops the connection) and the settlement must still run.
	h.settling.Add(1)
	h.pending.add(req.Subject)
	defer func() {
		go func() {
			defer h.settling.Done()
			defer h.pending.finish(req.Subject)
			h.settle(r, res, x)
		}()
	}()
	h.cfg.Upstream.ServeHTTP(w, r2)
}

// override reads the caller's stored user limits (an administrator's
// override, package entitlement) — only where the roles alone would refuse:
// no budget for the roles, a model they do not allow. Nil: none, or Redis
// did not answer (the roles' refusal stands).
func (h *Handler) override(r *http.Request, id *identity.Identity) *storedUser {
	l, err := h.cfg.Store.Limits(r.Context(), id.Subject, "u")
	if err != nil {
		zerolog.Ctx(r.Context()).Warn().Err(err).Msg("budget override not readable: the roles' budgets decide")
		return nil
	}
	if l == nil {
		return nil
	}
	return &storedUser{*l}
}

type storedUser struct{ budget.StoredLimits }

// allows: the override lists the model (nil: no override, or none listed).
func (o *storedUser) allows(model string) bool {
	return o != nil && o.Models != nil && slices.Contains(o.Models, model)
}

// reservation is a granted (or unmetered) reservation.
type reservation struct {
	*budget.Reservation
	unmetered bool
}

func unmetered(req budget.Request) reservation {
	c := req.Cap
	if c == 0 {
		c = req.DefaultCap
	}
	return reservation{Reservation: &budget.Reservation{Request: req, Cap: c, Tokens: req.PromptTokens + c*req.N,
		Headers: budget.Headers{Limit: -1}, Day: time.Now().UTC().Format(time.DateOnly)}, unmetered: true}
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request, d *budget.Denial) {
	h.cfg.Metrics.denied(d.Scope, d.Window)
	if d.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.RetryAfter.Seconds())), 10))
	}
	unit := "tokens"
	limit, used, requested := d.Limit, d.Used, d.Requested
	if d.Cost() {
		unit = "USD"
	}
	amount := func(v int64) string {
		if d.Cost() {
			return strconv.FormatFloat(float64(v)/budget.NanoPerUSD, 'f', -1, 64)
		}
		return strconv.FormatInt(v, 10)
	}
	window := map[string]string{"tpm": "tokens per min (TPM)", "tpd": "tokens per day", "tpmo": "tokens per month",
		"cpd": "USD per day", "cpmo": "USD per month"}[d.Window]
	if d.Rate() {
		setTokenHeaders(w.Header(), budget.Headers{Limit: limit, Remaining: max(limit-used, 0), Reset: max(d.RetryAfter, 0)})
	}
	msg := fmt.Sprintf("Limit reached for %s of your %s budget: Limit %s, Used %s, Requested %s %s.",
		window, d.Scope, amount(limit), amount(used), amount(requested), unit)
	switch {
	case d.RetryAfter < 0:
		msg += " This request alone exceeds the limit; ask for fewer tokens."
	case d.InFlight > 0:
		msg += fmt.Sprintf(" %s %s of it are reserved by your requests in flight; please try again in %s.",
			amount(d.InFlight), unit, d.RetryAfter.Round(time.Millisecond))
	case d.RetryAfter > 0:
		msg += " Please try again in " + d.RetryAfter.Round(time.Millisecond).String() + "."
	}
	typ, code := "tokens", CodeTokensRateLimited
	if !d.Rate() {
		typ, code = "insufficient_quota", CodeTokenBudgetExhausted
		if d.Cost() {
			code = CodeCostBudgetExhausted
		}
		if h.cfg.Exhausted != nil {
			h.cfg.Exhausted(r, d)
		}
	}
	openAIError(w, http.StatusTooManyRequests, typ, code, "", msg)
}

// setTokenHeaders writes OpenAI's x-ratelimit-*-tokens headers.
func setTokenHeaders(h http.Header, hd budget.Headers) {
	h.Set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(hd.Limit, 10))
	h.Set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(max(hd.Remaining, 0), 10))
	h.Set("X-Ratelimit-Reset-Tokens", ResetString(hd.Reset))
}

// ResetString formats a reset delay as OpenAI does ("6m0s", "1s",
// "17ms"): Go's duration format, rounded up to the millisecond.
func ResetString(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	d = (d + time.Millisecond - 1).Truncate(time.Millisecond)
	return d.String()
}

// openAIError writes {"error":{"message","type","param","code"}}.
func openAIError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	var p any
	if param != "" {
		p = param
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": p, "code": code}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// exchange observes the upstream's answer (llmproxy.Observer).
type exchange struct {
	includeUsage     bool
	choices, prompts int
	stream           *llmusage.Stream
	plain            *capture
	refused          bool
	failed           string
}

var _ llmproxy.Observer = (*exchange)(nil)

func (x *exchange) Answered(res *http.Response) {
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		x.stream = llmusage.NewStream(res.Body, x.includeUsage, x.choices, x.prompts)
		res.Body = x.stream
		res.Header.Del("Content-Length")
		res.ContentLength = -1
		return
	}
	x.plain = &capture{rc: res.Body}
	res.Body = x.plain
}

func (x *exchange) Refused(int)               { x.refused = true }
func (x *exchange) Failed(_ int, code string) { x.failed = code }

// maxCapture bounds the plain answer kept to read its usage.
const maxCapture = 32 << 20

// capture passes a plain answer through and keeps it (up to maxCapture)
// to read its usage at the end.
type capture struct {
	rc   io.ReadCloser
	buf  bytes.Buffer
	over bool
	eof  bool
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 && !c.over {
		if c.buf.Len()+n > maxCapture {
			c.over = true
			c.buf.Reset()
		} else {
			c.buf.Write(p[:n])
		}
	}
	if errors.Is(err, io.EOF) {
		c.eof = true
	}
	return n, err
}

func (c *capture) Close() error { return c.rc.Close() }

// usage decides what the exchange is charged: tokens used and the status.
func (x *exchange) usage(res *budget.Reservation) (prompt, completion int64, status string) {
	full := func(s string) (int64, int64, string) {
		return res.PromptTokens, res.Tokens - res.PromptTokens, s
	}
	switch {
	case x.refused:
		return 0, 0, StatusRefused
	case x.stream != nil:
		u := x.stream.Usage()
		if !u.Seen {
			if x.stream.Done() {
				return full(StatusNoUsage)
			}
			return full(StatusAborted)
		}
		if x.stream.Done() && !u.Partial {
			return u.PromptTokens, u.CompletionTokens, StatusSettled
		}
		if u.Partial {
			// a prompt of the batch never reported: its tokens were
			// processed but are unknown — charge the prompt bound
			return max(u.PromptTokens, res.PromptTokens), u.CompletionTokens, StatusAborted
		}
		return u.PromptTokens, u.CompletionTokens, StatusAborted
	case x.plain != nil:
		if x.plain.eof && !x.plain.over {
			if u := llmusage.FromJSON(x.plain.buf.Bytes()); u.Seen {
				return u.PromptTokens, u.CompletionTokens, StatusSettled
			}
		}
		return full(StatusNoUsage)
	case x.failed == llmproxy.CodeUpstreamUnavailable:
		return 0, 0, StatusFailed // never reached the model server
	default:
		return full(StatusFailed)
	}
}

func (h *Handler) settle(r *http.Request, res reservation, x *exchange) {
	prompt, completion, status := x.usage(res.Reservation)
	h.finish(r, res, prompt, completion, status)
}

func (h *Handler) settleFull(r *http.Request, res reservation, status string) {
	h.finish(r, res, res.PromptTokens, res.Tokens-res.PromptTokens, status)
}

func (h *Handler) finish(r *http.Request, res reservation, prompt, completion int64, status string) {
	log := zerolog.Ctx(r.Context())
	e := ledger.Entry{PromptTokens: prompt, CompletionTokens: completion, Reserved: res.Tokens, Status: status, At: time.Now()}
	if res.unmetered {
		e.Status = StatusUnmetered
		e.Record = budget.Record{ID: res.ID, Subject: res.Subject, KeyID: res.KeyID, Model: res.Model, Day: res.Day}
		e.Tokens = prompt + completion
		e.Nano = h.cfg.Budgets.PromptCost(res.Model, prompt) + h.cfg.Budgets.CompletionCost(res.Model, completion)
	} else {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.cfg.SettleTimeout)
		defer cancel()
		st, err := h.cfg.Store.Settle(ctx, res.Reservation, prompt, completion)
		if err != nil {
			// the reservation stays charged in full; the sweep records it
			log.Error().Err(err).Str("reason", "budget_settle_failed").Msg("budget settlement failed: the reservation stays charged in full until the sweep")
			return
		}
		if !st.Applied {
			return // swept meanwhile: the sweep recorded it
		}
		e.Record, e.Tokens, e.Nano, e.Overshoot = st.Record, st.Tokens, st.Nano, st.Overshoot
	}
	if e.Overshoot > 0 {
		h.cfg.Metrics.overshoot(res.Model, e.Overshoot)
		log.Warn().Str("reason", "budget_overshoot").Str("model", res.Model).Int64("reserved", res.Tokens).
			Int64("used", e.Tokens).Msg("the model server reported more tokens than were reserved; charged")
	}
	h.cfg.Metrics.tokens(res.Model, prompt, completion)
	h.cfg.Metrics.settled(e.Status)
	if h.cfg.Ledger != nil {
		h.cfg.Ledger.Record(e)
	}
}

// Sweep charges the reservations no replica settled (their replica died)
// in full and records them; run it periodically on every replica.
func (h *Handler) Sweep(ctx context.Context) (int, error) {
	swept, err := h.cfg.Store.Sweep(ctx, 500)
	for _, st := range swept {
		h.cfg.Metrics.settled(StatusSwept)
		h.cfg.Logger.Warn().Str("reason", "budget_swept").Str("model", st.Record.Model).Int64("tokens", st.Tokens).
			Msg("a reservation was never settled (its replica stopped?): charged in full")
		if h.cfg.Ledger != nil {
			h.cfg.Ledger.Record(ledger.Entry{Record: st.Record, Tokens: st.Tokens, Nano: st.Nano, Reserved: st.Reserved,
				Status: StatusSwept, At: time.Now()})
		}
	}
	return len(swept), err
}

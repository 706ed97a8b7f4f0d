package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/entitlement"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/ledger"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/metering"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/store"
	"github.com/gin-gonic/gin"
)

// MaxOverrideBody bounds PUT /v1/admin/budgets/users/{subject}.
const MaxOverrideBody = 16 << 10

var overrideBody = ginedge.JSONBody{Limit: MaxOverrideBody, FoldNames: true}

// USD is a USD figure in a request body: a JSON string ("12.5") or a
// number literal (12.5), taken exactly as written, never through a float
// (budget.ParseUSD decides).
type USD string

// UnmarshalJSON keeps the literal.
func (u *USD) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*u = USD(s)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*u = USD(b)
	default:
		return errors.New("a USD figure is a decimal string or number")
	}
	return nil
}

// BudgetRequest is a budget in a request body: every window optional
// (absent or null: no limit in it).
type BudgetRequest struct {
	TokensPerMinute *int64 `json:"tokens_per_minute"`
	TokensPerDay    *int64 `json:"tokens_per_day"`
	TokensPerMonth  *int64 `json:"tokens_per_month"`
	USDPerDay       *USD   `json:"usd_per_day"`
	USDPerMonth     *USD   `json:"usd_per_month"`
}

// limits checks b (budget.LimitsInput): a refusal is 400
// invalid_<field>, its message naming the field under prefix.
func (b BudgetRequest) limits(prefix string) (budget.Limits, error) {
	str := func(u *USD) *string {
		if u == nil {
			return nil
		}
		s := string(*u)
		return &s
	}
	l, err := budget.LimitsInput{TokensPerMinute: b.TokensPerMinute, TokensPerDay: b.TokensPerDay, TokensPerMonth: b.TokensPerMonth,
		USDPerDay: str(b.USDPerDay), USDPerMonth: str(b.USDPerMonth)}.Limits()
	if err != nil {
		return budget.Limits{}, fieldError(err, prefix)
	}
	return l, nil
}

// fieldError turns a *budget.FieldError into 400 invalid_<field>.
func fieldError(err error, prefix string) error {
	var fe *budget.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	return invalid(nil, "invalid_"+fe.Field, prefix+fe.Error())
}

// checkModels checks an optional models list (nil: absent).
func checkModels(models *[]string, prefix string) ([]string, error) {
	if models == nil {
		return nil, nil
	}
	m := *models
	if m == nil {
		m = []string{}
	}
	if err := budget.CheckModels(m); err != nil {
		return nil, fieldError(err, prefix)
	}
	return m, nil
}

// OverrideRequest is the body of PUT /v1/admin/budgets/users/{subject}.
type OverrideRequest struct {
	BudgetRequest
	// Models replaces the roles' models (absent or null: the roles').
	Models *[]string `json:"models"`
}

// DecodeOverride decodes and checks an override body; refusals are
// *ginedge.BodyError.
func DecodeOverride(body []byte) (budget.Limits, []string, error) {
	if body == nil {
		return budget.Limits{}, nil, invalid(ginedge.ErrInvalidJSON, ginedge.CodeInvalidJSON, "request body is required ({} for no limit in any window)")
	}
	var req OverrideRequest
	if err := overrideBody.Decode(body, &req); err != nil {
		return budget.Limits{}, nil, err
	}
	l, err := req.limits("")
	if err != nil {
		return budget.Limits{}, nil, err
	}
	models, err := checkModels(req.Models, "")
	if err != nil {
		return budget.Limits{}, nil, err
	}
	return l, models, nil
}

// LimitsView is a budget in an answer: each window's limit, null when
// not limited; USD as exact decimal strings.
type LimitsView struct {
	TokensPerMinute *int64  `json:"tokens_per_minute"`
	TokensPerDay    *int64  `json:"tokens_per_day"`
	TokensPerMonth  *int64  `json:"tokens_per_month"`
	USDPerDay       *string `json:"usd_per_day"`
	USDPerMonth     *string `json:"usd_per_month"`
}

func limitsView(l budget.Limits) LimitsView {
	tok := func(v int64) *int64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	usd := func(v int64) *string {
		if v == 0 {
			return nil
		}
		s := store.USD(v)
		return &s
	}
	return LimitsView{TokensPerMinute: tok(l.TokensPerMinute), TokensPerDay: tok(l.TokensPerDay), TokensPerMonth: tok(l.TokensPerMonth),
		USDPerDay: usd(l.NanoUSDPerDay), USDPerMonth: usd(l.NanoUSDPerMonth)}
}

// OverrideView is an override in an answer.
type OverrideView struct {
	Subject string `json:"subject"`
	LimitsView
	Models    []string  `json:"models"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

func overrideView(o entitlement.Override) OverrideView {
	return OverrideView{Subject: o.Subject, LimitsView: limitsView(o.Limits), Models: o.Models, UpdatedAt: o.UpdatedAt, UpdatedBy: o.UpdatedBy}
}

// budgetsOff answers 503 budgets_disabled without LLM_BUDGETS_FILE.
func (h *handlers) budgetsOff(c *gin.Context) bool {
	if h.cfg.Budgets == nil {
		ginedge.Abort(c, http.StatusServiceUnavailable, "budgets_disabled", "budgets are not configured on this server")
		return true
	}
	return false
}

// subject is the path's {subject}: budget.ValidSubject, else 400
// invalid_subject (an administrator's route: no existence oracle to
// avoid).
func subject(c *gin.Context) (string, bool) {
	s := c.Param("subject")
	if !budget.ValidSubject(s) {
		ginedge.Abort(c, http.StatusBadRequest, "invalid_subject", "subject must be 1-128 characters of A-Z a-z 0-9 . _ : @ - (not starting with a dot)")
		return "", false
	}
	return s, true
}

func (h *handlers) putOverride(c *gin.Context) {
	if h.budgetsOff(c) {
		return
	}
	sub, ok := subject(c)
	if !ok {
		return
	}
	body, err := overrideBody.Read(c)
	if err != nil {
		fail(c, err)
		return
	}
	l, models, err := DecodeOverride(body)
	if err != nil {
		fail(c, err)
		return
	}
	caller, _ := ginedge.Identity(c)
	o, err := h.cfg.Budgets.PutOverride(c.Request.Context(), entitlement.Override{Subject: sub, Limits: l, Models: models, UpdatedBy: caller.Subject})
	if err != nil {
		fail(c, err)
		return
	}
	h.emit(c, audit.ActionBudgetChanged, audit.CleanTarget(sub), audit.OutcomeSuccess, "override_set", audit.SeverityInfo)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, overrideView(o))
}

func (h *handlers) getOverride(c *gin.Context) {
	if h.budgetsOff(c) {
		return
	}
	sub, ok := subject(c)
	if !ok {
		return
	}
	o, err := h.cfg.Budgets.Override(c.Request.Context(), sub)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, overrideView(o))
}

func (h *handlers) deleteOverride(c *gin.Context) {
	if h.budgetsOff(c) {
		return
	}
	sub, ok := subject(c)
	if !ok {
		return
	}
	caller, _ := ginedge.Identity(c)
	if err := h.cfg.Budgets.RemoveOverride(c.Request.Context(), sub, caller.Subject); err != nil {
		fail(c, err)
		return
	}
	h.emit(c, audit.ActionBudgetChanged, audit.CleanTarget(sub), audit.OutcomeSuccess, "override_removed", audit.SeverityInfo)
	c.Status(http.StatusNoContent)
}

// TokenWindow is a token window of GET /v1/usage.
type TokenWindow struct {
	Limit     int64  `json:"limit"`
	Used      int64  `json:"used"`
	Remaining int64  `json:"remaining"`
	Reset     string `json:"reset"`
}

// USDWindow is a cost window of GET /v1/usage (exact decimal strings).
type USDWindow struct {
	Limit     string `json:"limit"`
	Used      string `json:"used"`
	Remaining string `json:"remaining"`
	Reset     string `json:"reset"`
}

// BudgetStatus lists a scope's limited windows.
type BudgetStatus struct {
	TokensPerMinute *TokenWindow `json:"tokens_per_minute,omitempty"`
	TokensPerDay    *TokenWindow `json:"tokens_per_day,omitempty"`
	TokensPerMonth  *TokenWindow `json:"tokens_per_month,omitempty"`
	USDPerDay       *USDWindow   `json:"usd_per_day,omitempty"`
	USDPerMonth     *USDWindow   `json:"usd_per_month,omitempty"`
}

func budgetStatus(st budget.ScopeStatus) BudgetStatus {
	var b BudgetStatus
	for _, w := range st.Windows {
		tw := &TokenWindow{Limit: w.Limit, Used: w.Used, Remaining: w.Remaining, Reset: metering.ResetString(w.Reset)}
		uw := &USDWindow{Limit: store.USD(w.Limit), Used: store.USD(w.Used), Remaining: store.USD(w.Remaining), Reset: tw.Reset}
		switch w.Name {
		case "tpm":
			b.TokensPerMinute = tw
		case "tpd":
			b.TokensPerDay = tw
		case "tpmo":
			b.TokensPerMonth = tw
		case "cpd":
			b.USDPerDay = uw
		case "cpmo":
			b.USDPerMonth = uw
		}
	}
	return b
}

// UsageView is the answer of GET /v1/usage.
type UsageView struct {
	Subject string `json:"subject"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Models the caller may use; null: every model.
	Models []string `json:"models"`
	// Budgets by scope: "user", "key" (an API key with its own),
	// "model:<name>".
	Budgets   map[string]BudgetStatus `json:"budgets"`
	Usage     []ledger.Row            `json:"usage"`
	Truncated bool                    `json:"truncated"`
}

// AdminUsageView is the answer of GET /v1/admin/usage.
type AdminUsageView struct {
	Subject   *string      `json:"subject"`
	From      string       `json:"from"`
	To        string       `json:"to"`
	Usage     []ledger.Row `json:"usage"`
	Truncated bool         `json:"truncated"`
}

// rows cuts rows to ledger.MaxRows (true: there were more).
func rows(rs []ledger.Row) ([]ledger.Row, bool) {
	if rs == nil {
		rs = []ledger.Row{}
	}
	if len(rs) > ledger.MaxRows {
		return rs[:ledger.MaxRows], true
	}
	return rs, false
}

func (h *handlers) usage(c *gin.Context) {
	if h.budgetsOff(c) {
		return
	}
	id, _ := ginedge.Identity(c)
	q, qe := ledger.ParseQuery(c.Request.URL.RawQuery, h.cfg.Keys.Now(), false)
	if qe != nil {
		fail(c, qe)
		return
	}
	// an API key sees its own rows only; a JWT all of its subject's
	q.Subject, q.KeyID = id.Subject, id.APIKeyID
	st, err := h.cfg.Budgets.Status(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	rs, err := h.cfg.Usage.Usage(c.Request.Context(), q)
	if err != nil {
		fail(c, err)
		return
	}
	out := UsageView{Subject: id.Subject, Models: st.Models, Budgets: map[string]BudgetStatus{}}
	out.From, out.To = q.Days()
	out.Usage, out.Truncated = rows(rs)
	for i := range out.Usage {
		out.Usage[i].Subject = "" // the caller's, named above
	}
	for _, s := range st.Scopes {
		name := s.Kind
		if s.Kind == "model" {
			name = "model:" + s.Part[len("m:"):]
		}
		out.Budgets[name] = budgetStatus(s)
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

func (h *handlers) adminUsage(c *gin.Context) {
	if h.budgetsOff(c) {
		return
	}
	q, qe := ledger.ParseQuery(c.Request.URL.RawQuery, h.cfg.Keys.Now(), true)
	if qe != nil {
		fail(c, qe)
		return
	}
	rs, err := h.cfg.Usage.Usage(c.Request.Context(), q)
	if err != nil {
		fail(c, err)
		return
	}
	out := AdminUsageView{}
	if q.Subject != "" {
		out.Subject = &q.Subject
	}
	out.From, out.To = q.Days()
	out.Usage, out.Truncated = rows(rs)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

package server

import (
	"errors"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/pkg/ratelimit"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/guests"
	"github.com/gin-gonic/gin"
)

// Body limits of the guest-session endpoints.
const (
	MaxGuestLoginBody = 1 << 10
	MaxSessionBody    = 16 << 10
	// MaxRefreshToken bounds a refresh token (Keycloak's are JWTs of about
	// 0.5–2 KiB).
	MaxRefreshToken = 8 << 10
)

// GuestLoginRequest is the (optional) body of POST /auth/guest-login: empty
// or {}. Nothing the client sends shapes the guest.
type GuestLoginRequest struct{}

// DecodeGuestLogin accepts no body or an empty JSON object.
func DecodeGuestLogin(body []byte) error {
	if body == nil {
		return nil
	}
	var req GuestLoginRequest
	return guestLoginBody.Decode(body, &req)
}

// SessionRequest is the body of POST /auth/refresh and POST /auth/logout.
type SessionRequest struct {
	RefreshToken *string `json:"refresh_token"`
}

// DecodeSession decodes a refresh/logout body: one JSON object with a
// refresh_token of JWT characters ([A-Za-z0-9._-]), at most MaxRefreshToken
// long. Anything else is 400 before Keycloak is asked.
func DecodeSession(body []byte) (guests.Secret, error) {
	if body == nil {
		return "", invalid(ginedge.ErrInvalidJSON, ginedge.CodeInvalidJSON, "request body is required")
	}
	var req SessionRequest
	if err := sessionBody.Decode(body, &req); err != nil {
		return "", err
	}
	if req.RefreshToken == nil || *req.RefreshToken == "" {
		return "", invalid(nil, "invalid_refresh_token", "refresh_token is required")
	}
	t := *req.RefreshToken
	if len(t) > MaxRefreshToken || !tokenChars(t) {
		return "", invalid(nil, "invalid_refresh_token", "refresh_token is not a token")
	}
	return guests.Secret(t), nil
}

func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// TokenResponse is the answer of guest login and refresh: the tokens and
// their lifetimes, nothing else (no ID token, no session state, never the
// guest's password).
type TokenResponse struct {
	AccessToken      string `json:"access_token"`
	RefreshToken     string `json:"refresh_token"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	TokenType        string `json:"token_type"`
}

func tokenResponse(t *guests.Tokens) TokenResponse {
	tt := t.TokenType
	if tt == "" || strings.EqualFold(tt, "bearer") {
		tt = "Bearer"
	}
	return TokenResponse{AccessToken: string(t.AccessToken), RefreshToken: string(t.RefreshToken),
		ExpiresIn: t.ExpiresIn, RefreshExpiresIn: t.RefreshExpiresIn, TokenType: tt}
}

// clientAddr is the client address of a guest route (no credentials, so
// no edge assertion): the peer, or — only when the peer is one of
// TRUSTED_PROXIES, the gateway's own addresses — the X-Forwarded-For
// address the gateway sends (exactly one: Kong's client-ip plugin).
func clientAddr(c *gin.Context) netip.Addr {
	a, err := netip.ParseAddr(ginedge.ClientIP(c))
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// guestsOff answers the guest routes when guest login is disabled.
func guestsOff(c *gin.Context) {
	ginedge.Abort(c, http.StatusServiceUnavailable, "guest_login_disabled", "guest sessions are disabled on this server")
}

func (h *handlers) guestLogin(c *gin.Context) {
	body, err := guestLoginBody.Read(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := DecodeGuestLogin(body); err != nil {
		fail(c, err)
		return
	}
	res, err := h.cfg.Guests.AdmitLogin(c.Request.Context(), clientAddr(c))
	if !admitted(c, res, err) {
		return
	}
	toks, err := h.cfg.Guests.Login(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	h.emit(c, audit.ActionGuestCreated, toks.UserID, audit.OutcomeSuccess, "", audit.SeverityInfo)
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	c.JSON(http.StatusOK, tokenResponse(toks))
}

func (h *handlers) session(c *gin.Context) (guests.Secret, bool) {
	body, err := sessionBody.Read(c)
	if err != nil {
		fail(c, err)
		return "", false
	}
	tok, err := DecodeSession(body)
	if err != nil {
		fail(c, err)
		return "", false
	}
	res, err := h.cfg.Guests.AdmitSession(c.Request.Context(), clientAddr(c))
	return tok, admitted(c, res, err)
}

func (h *handlers) refresh(c *gin.Context) {
	tok, ok := h.session(c)
	if !ok {
		return
	}
	toks, err := h.cfg.Guests.Refresh(c.Request.Context(), tok)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	c.JSON(http.StatusOK, tokenResponse(toks))
}

func (h *handlers) logout(c *gin.Context) {
	tok, ok := h.session(c)
	if !ok {
		return
	}
	if err := h.cfg.Guests.Logout(c.Request.Context(), tok); err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusNoContent)
}

// admitted sets the rate-limit headers of a decision and answers a denial
// (429 rate_limited with Retry-After) or a limiter failure (503) by the
// error table.
func admitted(c *gin.Context, res ratelimit.Result, err error) bool {
	setRateHeaders(c, res)
	if err == nil {
		return true
	}
	var lim *guests.LimitedError
	if errors.As(err, &lim) {
		ginedge.Logger(c).Info().Str("reason", "rate_limited").Str("scope", lim.Scope).Msg("guest session request limited")
	}
	fail(c, err)
	return false
}

// setRateHeaders writes RateLimit-Limit/-Remaining/-Reset of the deciding
// limit and X-RateLimit-Limit-<Window>/-Remaining-<Window> of each.
func setRateHeaders(c *gin.Context, res ratelimit.Result) {
	if len(res.Limits) == 0 {
		return
	}
	d := res.Decided()
	c.Header("RateLimit-Limit", strconv.Itoa(d.Limit.Rate))
	c.Header("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	c.Header("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter)))
	for _, l := range res.Limits {
		w := l.Limit.Name
		if w != "" {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		c.Header("X-RateLimit-Limit-"+w, strconv.Itoa(l.Limit.Rate))
		c.Header("X-RateLimit-Remaining-"+w, strconv.Itoa(l.Remaining))
	}
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

package server

import (
	"net/http"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/auditlog"
	"github.com/gin-gonic/gin"
)

// emit records an audit event for the request: the caller's subject and
// key id (from the verified identity), the client address (the edge's
// signed one on authenticated routes, ginedge.ClientIP), the request id.
// A nil emitter (audit off) discards it; emitting never blocks.
func (h *handlers) emit(c *gin.Context, action audit.Action, target string, outcome audit.Outcome, reason string, sev audit.Severity) {
	if h.cfg.Audit == nil {
		return
	}
	ev := audit.Event{
		RequestID: c.Writer.Header().Get(edgehttp.HeaderRequestID),
		Actor:     audit.Actor{IP: audit.CleanIP(ginedge.ClientIP(c))},
		Action:    action, Target: target, Outcome: outcome, Reason: reason, Severity: sev, Source: "llm-api",
	}
	if id, ok := ginedge.Identity(c); ok && id != nil {
		ev.Actor.Subject, ev.Actor.KeyID = audit.CleanTarget(id.Subject), audit.CleanKeyID(id.APIKeyID)
	}
	h.cfg.Audit.Emit(ev)
}

// EventView is one stored event in an admin answer.
type EventView struct {
	ID        string         `json:"id"`
	Time      time.Time      `json:"time"`
	RequestID string         `json:"request_id"`
	Actor     audit.Actor    `json:"actor"`
	Action    audit.Action   `json:"action"`
	Target    string         `json:"target"`
	Outcome   audit.Outcome  `json:"outcome"`
	Reason    string         `json:"reason"`
	Severity  audit.Severity `json:"severity"`
	Source    string         `json:"source"`
	// Sanitized lists the fields the emitter replaced because their value
	// was unacceptable (e.g. ["request_id"]); [] for most events.
	Sanitized audit.Sanitized `json:"sanitized"`
}

// EventsPage is the answer of GET /v1/admin/audit/events.
type EventsPage struct {
	Events     []EventView `json:"events"`
	NextCursor *string     `json:"next_cursor"`
}

func (h *handlers) auditOff(c *gin.Context) bool {
	if h.cfg.AuditStore == nil {
		ginedge.Abort(c, http.StatusServiceUnavailable, "audit_disabled", "audit storage is not configured on this server")
		return true
	}
	return false
}

func (h *handlers) auditEvents(c *gin.Context) {
	if h.auditOff(c) {
		return
	}
	q, qe := auditlog.ParseEventsQuery(c.Request.URL.RawQuery, h.cfg.Keys.Now())
	if qe != nil {
		fail(c, qe)
		return
	}
	want := q.Limit
	q.Limit++ // one more tells whether a next page exists
	rows, err := h.cfg.AuditStore.AuditEvents(c.Request.Context(), q)
	if err != nil {
		fail(c, err)
		return
	}
	page := EventsPage{Events: make([]EventView, 0, min(len(rows), want))}
	for i, r := range rows {
		if i == want {
			cur := auditlog.EncodeCursor(rows[want-1].Seq)
			page.NextCursor = &cur
			break
		}
		page.Events = append(page.Events, EventView{ID: r.StreamID, Time: r.Time, RequestID: r.RequestID, Actor: r.Actor,
			Action: r.Action, Target: r.Target, Outcome: r.Outcome, Reason: r.Reason, Severity: r.Severity, Source: r.Source,
			Sanitized: r.Sanitized})
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, page)
}

func (h *handlers) auditStats(c *gin.Context) {
	if h.auditOff(c) {
		return
	}
	q, qe := auditlog.ParseStatsQuery(c.Request.URL.RawQuery, h.cfg.Keys.Now())
	if qe != nil {
		fail(c, qe)
		return
	}
	st, err := h.cfg.AuditStore.AuditStats(c.Request.Context(), q.Since)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, st)
}

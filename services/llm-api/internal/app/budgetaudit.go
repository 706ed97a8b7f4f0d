package app

import (
	"net/http"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/audit"
	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/services/llm-api/internal/budget"
)

// exhaustedAudit emits budget.exhausted once per caller, scope and window
// per UTC day on this replica (a refused client retrying must not flood
// the audit stream).
type exhaustedAudit struct {
	em   *audit.Emitter
	mu   sync.Mutex
	day  string
	seen map[string]bool
}

func newExhaustedAudit(em *audit.Emitter) *exhaustedAudit {
	return &exhaustedAudit{em: em, seen: map[string]bool{}}
}

// maxSeen bounds the day's dedupe set; beyond it events are not deduped.
const maxSeen = 100_000

func (e *exhaustedAudit) emit(r *http.Request, d *budget.Denial) {
	if e.em == nil {
		return
	}
	id, ok := edgehttp.IdentityFrom(r.Context())
	if !ok || id == nil {
		return
	}
	target := d.Scope + ":" + d.Window
	day := time.Now().UTC().Format(time.DateOnly)
	key := id.Subject + "\x00" + id.APIKeyID + "\x00" + target
	e.mu.Lock()
	if e.day != day {
		e.day, e.seen = day, map[string]bool{}
	}
	dup := e.seen[key]
	if !dup && len(e.seen) < maxSeen {
		e.seen[key] = true
	}
	e.mu.Unlock()
	if dup {
		return
	}
	ev := audit.Event{
		RequestID: edgehttp.RequestID(r),
		Actor:     audit.Actor{Subject: audit.CleanTarget(id.Subject), KeyID: audit.CleanKeyID(id.APIKeyID)},
		Action:    audit.ActionBudgetExhausted, Target: target, Outcome: audit.OutcomeDenied,
		Reason: "budget_exhausted", Severity: audit.SeverityWarning, Source: "llm-api",
	}
	if ip, ok := edgehttp.ClientIPFrom(r.Context()); ok {
		ev.Actor.IP = audit.CleanIP(ip.String())
	}
	e.em.Emit(ev)
}

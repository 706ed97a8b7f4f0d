package pipeline

import (
	"github.com/edgeguard/edgeguard/pkg/apikey"
	"github.com/edgeguard/edgeguard/pkg/audit"
)

// auditDenial emits the audit event of an answer: 401/403 are auth.denied,
// 429 is auth.rate_limited, with the answer's code as reason; anything else
// (400, 431, 5xx) is not an audit event and reads nothing. It reads the
// client address, the request id, the path and, on a 429, the request's
// identity — before the exit, while the host can still answer. The subject
// of a 403 is the identity the stage refused; of a 429 the request's.
func (r *Request) auditDenial(res Result) {
	ev := audit.Event{Outcome: audit.OutcomeDenied, Source: r.p.name}
	switch res.Status {
	case 401:
		ev.Action, ev.Severity = audit.ActionAuthDenied, audit.SeverityInfo
	case 403:
		ev.Action, ev.Severity = audit.ActionAuthDenied, audit.SeverityWarning
		if id := res.Refused; id != nil {
			ev.Actor.Subject, ev.Actor.KeyID = id.Subject, id.APIKeyID
		}
	case 429:
		ev.Action, ev.Severity = audit.ActionAuthRateLimited, audit.SeverityInfo
		if res.Code == apikey.CodeTooManyFailures { // someone is guessing keys
			ev.Severity = audit.SeverityWarning
		}
		if id, ok := r.Identity(); ok {
			ev.Actor.Subject, ev.Actor.KeyID = id.Subject, id.APIKeyID
		}
	default:
		return
	}
	ev.Reason = res.Code
	ev.Actor.IP = audit.CleanIP(r.ClientIP())
	// the id the client is answered with: header-guard's (which replaced a
	// malformed or credential-shaped one) when it ran, else the client's
	// when acceptable; never a credential-shaped value
	ev.RequestID = r.RequestID()
	// the path is the target when it is a plain identifier (never a
	// credential: those are refused), else none; the same for the subject
	ev.Target = audit.CleanTarget(r.Path())
	ev.Actor.Subject, ev.Actor.KeyID = audit.CleanTarget(ev.Actor.Subject), audit.CleanKeyID(ev.Actor.KeyID)
	r.p.audit.Emit(ev)
}

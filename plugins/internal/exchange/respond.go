package exchange

import (
	"encoding/json"
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// ContentTypeJSON is the Content-Type of every error the edge answers.
const ContentTypeJSON = "application/json; charset=utf-8"

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorBody renders the edge's client error format
// {"error":{"code":"...","message":"..."}}. code is a stable reason code;
// message is a generic human sentence (never a credential or claim).
func ErrorBody(code, message string) []byte {
	b, err := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: message}})
	if err != nil { // cannot happen for two strings
		return []byte(`{"error":{"code":"internal_error","message":"internal error"}}`)
	}
	return b
}

// Deny ends the request with a JSON error. headers may be nil.
func Deny(ex Exchange, status int, code, message string, headers map[string]string) {
	h := make(map[string]string, len(headers)+1)
	for k, v := range headers {
		h[k] = v
	}
	h["Content-Type"] = ContentTypeJSON
	if r, ok := ex.(interface{ RecordDenial(code string) }); ok {
		r.RecordDenial(code) // hosts that count outcomes (kongadapter)
	}
	ex.Exit(status, ErrorBody(code, message), h)
}

// Forbid answers 403 code for id, a verified identity the route's policy
// refused. Hosts that audit (kongadapter, pluginrt) note who was refused: the
// plugin hands the identity over, since it is not recorded for the request
// (SetAuthenticated) and reading kong.ctx.shared would cost a PDK call.
func Forbid(ex Exchange, id *identity.Identity, code, message string, headers map[string]string) {
	if r, ok := ex.(interface{ RecordRefused(*identity.Identity) }); ok {
		r.RecordRefused(id)
	}
	Deny(ex, http.StatusForbidden, code, message, headers)
}

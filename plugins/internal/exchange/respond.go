package exchange

import (
	"encoding/json"
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

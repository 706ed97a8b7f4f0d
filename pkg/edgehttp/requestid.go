package edgehttp

import (
	"net/http"

	"github.com/edgeguard/edgeguard/pkg/requestid"
)

// HeaderRequestID is the request id header.
const HeaderRequestID = requestid.Header

// RequestID returns the request's X-Request-ID when it is valid (one line,
// requestid.Valid), else a new random one. Callers echo it on the response and
// put it in every log line.
func RequestID(r *http.Request) string {
	if v := r.Header.Values(HeaderRequestID); len(v) == 1 && requestid.Valid(v[0]) {
		return v[0]
	}
	return requestid.New()
}

package devgw

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
)

// sizeLimitPriority is Kong's priority of request-size-limiting: after the
// auth plugins (an anonymous client learns nothing about limits), before
// redis-ratelimit.
const sizeLimitPriority = 951

// sizeLimitConfig is Kong 3.9's request-size-limiting configuration.
type sizeLimitConfig struct {
	AllowedPayloadSize   *int   `json:"allowed_payload_size"`
	SizeUnit             string `json:"size_unit"`
	RequireContentLength bool   `json:"require_content_length"`
}

// sizeLimit is Kong's request-size-limiting: a declared Content-Length over
// the limit is refused before any byte of the body is read; a body without
// one is read (buffered, as Kong does) up to one byte past the limit.
// Answers are Kong's own ({"message": ...}), as clients see them in
// production.
type sizeLimit struct {
	limit   int64
	require bool
}

var _ step = (*sizeLimit)(nil)

var sizeUnits = map[string]int64{"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20}

func newSizeLimit(c sizeLimitConfig) (*sizeLimit, error) {
	size := 128 // Kong's default
	if c.AllowedPayloadSize != nil {
		size = *c.AllowedPayloadSize
	}
	unit := c.SizeUnit
	if unit == "" {
		unit = "megabytes"
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return nil, fmt.Errorf("request-size-limiting: size_unit %q is not bytes, kilobytes or megabytes", unit)
	}
	if size < 0 {
		return nil, fmt.Errorf("request-size-limiting: allowed_payload_size %d is negative", size)
	}
	return &sizeLimit{limit: int64(size) * mult, require: c.RequireContentLength}, nil
}

// kongMessage renders Kong's built-in error body.
func kongMessage(msg string) []byte { return []byte(`{"message":"` + msg + `"}`) }

func kongExit(ex exchange.Exchange, status int, msg string) {
	ex.Exit(status, kongMessage(msg), map[string]string{"Content-Type": exchange.ContentTypeJSON})
}

func (s *sizeLimit) run(ex *Exchange) {
	r := ex.r
	declared := r.Header.Get("Content-Length") != "" || r.ContentLength > 0
	if s.require && !declared {
		kongExit(ex, 411, "A valid Content-Length header is required")
		return
	}
	if declared {
		if r.ContentLength > s.limit {
			s.refuse(ex)
		}
		return
	}
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, s.limit+1))
	var capped *http.MaxBytesError
	switch {
	case errors.As(err, &capped): // the gateway's own cap (client_max_body_size)
		kongExit(ex, 413, msgPayloadTooLarge)
		return
	case err != nil:
		kongExit(ex, 400, "Bad request")
		return
	}
	if int64(len(data)) > s.limit {
		s.refuse(ex)
		return
	}
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data)) // forwarded with a length, as Kong does after buffering
	r.TransferEncoding = nil
}

func (s *sizeLimit) refuse(ex *Exchange) {
	if strings.EqualFold(ex.Header("expect"), "100-continue") {
		kongExit(ex, 417, "Request size limit exceeded")
		return
	}
	kongExit(ex, 413, "Request size limit exceeded")
}

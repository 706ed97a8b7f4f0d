package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
	"github.com/gin-gonic/gin"
)

// answer is how media-api answers an error: status, stable code and the
// client's message (never the error's text), Retry-After in seconds (0:
// none), whether to close the connection instead of reading the rest of a
// refused body, and a debug log line for refusals worth one. media-api
// emits no audit events, so its answers carry no audit severity.
type answer struct {
	status     int
	code       string
	message    string
	retryAfter int
	closeConn  bool
	debug      string
}

// errClientGone marks a context.Canceled whose request the client
// cancelled (fail decides: only the request's own context says so).
var errClientGone = errors.New("request cancelled by the client")

// errorTable is media-api's one mapping of errors to answers: package
// media's rejections and the handlers' own. Sentinels are matched with
// errors.Is, first row first; answerOf adds the errors that carry their
// own answer, and the failure answer for everything else.
var errorTable = []struct {
	err error
	answer
}{
	{media.ErrNotFound, answer{status: http.StatusNotFound, code: "not_found", message: "no such media"}},
	{media.ErrTooLarge, answer{status: http.StatusRequestEntityTooLarge, code: "media_too_large", message: "media larger than the size limit", closeConn: true}},
	{media.ErrEmpty, answer{status: http.StatusBadRequest, code: "empty_body", message: "no media in the request"}},
	{media.ErrUnsupportedType, answer{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
		message: "only jpeg, png, gif and webp images are accepted (judged by content, not by the declared type)", closeConn: true}},
	{media.ErrBody, answer{status: http.StatusBadRequest, code: "invalid_body", message: "the request body could not be read to its end",
		closeConn: true, debug: "request body unreadable"}},
	{media.ErrURLExpired, answer{status: http.StatusForbidden, code: "url_invalid", message: "the download url has expired"}},
	{media.ErrURLInvalid, answer{status: http.StatusForbidden, code: "url_invalid", message: "the download url is invalid"}},
	{media.ErrFetchDisabled, answer{status: http.StatusForbidden, code: "fetch_disabled", message: "remote fetch is disabled (MEDIA_FETCH_ENABLED=false)"}},
	{media.ErrInvalidURL, answer{status: http.StatusBadRequest, code: "invalid_url", message: "url must be an absolute http or https url without credentials"}},
	{media.ErrFetchRefused, answer{status: http.StatusUnprocessableEntity, code: "fetch_refused",
		message: "the url leads to an address, scheme or redirect chain that is not allowed"}},
	{media.ErrFetchTimeout, answer{status: http.StatusGatewayTimeout, code: "fetch_timeout", message: "the remote server did not answer in time"}},
	{media.ErrFetchFailed, answer{status: http.StatusBadGateway, code: "fetch_failed", message: "the remote server could not be fetched"}},
	{errClientGone, answer{status: http.StatusBadRequest, code: "request_cancelled", message: "request cancelled", closeConn: true,
		debug: "request cancelled by the client"}},
	// a JSON body (fetch) that could not be read: this service's code
	{ginedge.ErrBodyUnreadable, answer{status: http.StatusBadRequest, code: "invalid_body", message: "the request body could not be read"}},
}

// failure answers every other error: a storage failure, logged.
var failure = answer{status: http.StatusServiceUnavailable, code: "unavailable", message: "service temporarily unavailable", retryAfter: 5}

// answerOf returns err's answer and whether err is a refusal (false: a
// failure). Besides the table: a refused JSON body (*ginedge.BodyError)
// answers with its own code, a body over its byte limit
// (*http.MaxBytesError) as media_too_large, a malformed multipart upload
// (*multipartError) as invalid_multipart with its message.
func answerOf(err error) (answer, bool) {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.answer, true
		}
	}
	var (
		body *ginedge.BodyError
		mbe  *http.MaxBytesError
		mp   *multipartError
	)
	switch {
	case errors.As(err, &body):
		return answer{status: body.Status, code: body.Code, message: body.Message}, true
	case errors.As(err, &mbe):
		return answerOf(media.ErrTooLarge)
	case errors.As(err, &mp):
		a := answer{status: http.StatusBadRequest, code: "invalid_multipart", message: mp.message, closeConn: true}
		if mp.err != nil {
			a.debug = "malformed multipart body"
		}
		return a, true
	}
	return failure, false
}

// fail answers err by the table: a failure is logged at error, refusals
// that ask for it at debug (the client sees only the answer).
func fail(c *gin.Context, err error) {
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		err = fmt.Errorf("%w: %w", errClientGone, err)
	}
	a, refused := answerOf(err)
	switch {
	case !refused:
		ginedge.Logger(c).Error().Err(err).Msg("request failed")
	case a.debug != "":
		ginedge.Logger(c).Debug().Err(err).Msg(a.debug)
	}
	if a.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(a.retryAfter))
	}
	if a.closeConn {
		c.Header("Connection", "close") // the rest of a refused body is not read
	}
	ginedge.Abort(c, a.status, a.code, a.message)
}

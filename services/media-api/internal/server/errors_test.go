package server

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp/ginedge"
	"github.com/edgeguard/edgeguard/services/media-api/internal/media"
)

// One table answers every error, wrapped or not; anything unknown is a
// 503 failure.
func TestErrorTableAnswersEveryError(t *testing.T) {
	for _, tc := range []struct {
		err       error
		status    int
		code      string
		closeConn bool
		refused   bool
	}{
		{media.ErrNotFound, 404, "not_found", false, true},
		{fmt.Errorf("upload: %w", media.ErrTooLarge), 413, "media_too_large", true, true},
		{&http.MaxBytesError{Limit: 1}, 413, "media_too_large", true, true},
		{malformedMultipart(&http.MaxBytesError{Limit: 1}), 413, "media_too_large", true, true},
		{media.ErrEmpty, 400, "empty_body", false, true},
		{media.ErrUnsupportedType, 415, "unsupported_media_type", true, true},
		{fmt.Errorf("%w: %w", media.ErrBody, errors.New("reset")), 400, "invalid_body", true, true},
		{media.ErrURLExpired, 403, "url_invalid", false, true},
		{media.ErrURLInvalid, 403, "url_invalid", false, true},
		{media.ErrFetchDisabled, 403, "fetch_disabled", false, true},
		{media.ErrInvalidURL, 400, "invalid_url", false, true},
		{media.ErrFetchRefused, 422, "fetch_refused", false, true},
		{media.ErrFetchTimeout, 504, "fetch_timeout", false, true},
		{media.ErrFetchFailed, 502, "fetch_failed", false, true},
		{errClientGone, 400, "request_cancelled", true, true},
		{&ginedge.BodyError{Status: 400, Code: "body_unreadable", Message: "x", Kind: ginedge.ErrBodyUnreadable}, 400, "invalid_body", false, true},
		{&ginedge.BodyError{Status: 400, Code: "unknown_field", Message: "x", Kind: ginedge.ErrUnknownField}, 400, "unknown_field", false, true},
		{invalidURL("x"), 400, "invalid_url", false, true},
		{malformedMultipart(errors.New("bad boundary")), 400, "invalid_multipart", true, true},
		{&multipartError{message: "x"}, 400, "invalid_multipart", true, true},
		{errors.New("disk full"), 503, "unavailable", false, false},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			a, refused := answerOf(tc.err)
			if a.status != tc.status || a.code != tc.code || a.closeConn != tc.closeConn || refused != tc.refused || a.message == "" {
				t.Fatalf("got %+v %v, want %d %s close=%v %v", a, refused, tc.status, tc.code, tc.closeConn, tc.refused)
			}
		})
	}
}

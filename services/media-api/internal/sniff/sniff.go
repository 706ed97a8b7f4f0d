// Package sniff decides a media object's type from its first bytes — never
// from what the client declared. Only four image types are accepted: JPEG,
// PNG, GIF and WebP. Everything else (HTML, SVG, XML, PDF, executables,
// text, a truncated header) is refused, so the service never stores or
// serves something a browser could run as active content.
//
// It is not a validator of whole files: a file that starts like a PNG is a
// PNG here. The service serves every object with nosniff and as an
// attachment, so a polyglot cannot be rendered as HTML either.
package sniff

import (
	"bytes"
	"net/http"
)

// Accepted content types.
const (
	JPEG = "image/jpeg"
	PNG  = "image/png"
	GIF  = "image/gif"
	WebP = "image/webp"
)

// HeadLen is how many leading bytes Detect looks at (http.DetectContentType
// reads at most 512).
const HeadLen = 512

// Detect returns the content type of an object starting with head, and
// whether it is one of the accepted types. The signature must be present
// and match both http.DetectContentType (the WHATWG sniffing algorithm,
// which reports HTML or XML for markup even when an image name is
// claimed) and the format's own magic bytes.
func Detect(head []byte) (string, bool) {
	if len(head) > HeadLen {
		head = head[:HeadLen]
	}
	ct := http.DetectContentType(head)
	switch ct {
	case JPEG:
		// SOI marker followed by the start of a marker segment.
		return ct, len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF
	case PNG:
		return ct, bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n"))
	case GIF:
		return ct, bytes.HasPrefix(head, []byte("GIF87a")) || bytes.HasPrefix(head, []byte("GIF89a"))
	case WebP:
		return ct, isWebP(head)
	}
	return ct, false
}

// isWebP checks the RIFF container: "RIFF" <size> "WEBP" and a VP8 chunk
// ("VP8 ", "VP8L" or "VP8X").
func isWebP(b []byte) bool {
	if len(b) < 16 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return false
	}
	switch string(b[12:16]) {
	case "VP8 ", "VP8L", "VP8X":
		return true
	}
	return false
}

// Ext is the file extension for an accepted type (Content-Disposition).
func Ext(ct string) string {
	switch ct {
	case JPEG:
		return ".jpg"
	case PNG:
		return ".png"
	case GIF:
		return ".gif"
	case WebP:
		return ".webp"
	}
	return ""
}

// Accepted reports whether ct is one of the four accepted types (for
// metadata read back from storage).
func Accepted(ct string) bool { return Ext(ct) != "" }

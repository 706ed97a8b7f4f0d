package sniff

import (
	"strings"
	"testing"
)

// Minimal headers of real files.
var (
	pngHead  = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
	jpegHead = "\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
	gifHead  = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04"
	webpHead = "RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00\x30\x01\x00\x9d\x01\x2a"
)

func TestImagesAreDetectedFromTheirBytes(t *testing.T) {
	cases := map[string]string{pngHead: PNG, jpegHead: JPEG, gifHead: GIF, "GIF87a" + gifHead[6:]: GIF,
		webpHead: WebP, strings.Replace(webpHead, "VP8 ", "VP8L", 1): WebP, strings.Replace(webpHead, "VP8 ", "VP8X", 1): WebP}
	for head, want := range cases {
		got, ok := Detect([]byte(head))
		if !ok || got != want {
			t.Errorf("Detect(%q) = %s, %v; want %s", head[:8], got, ok, want)
		}
	}
}

func TestEverythingElseIsRefused(t *testing.T) {
	for name, head := range map[string]string{
		"html":          "<!DOCTYPE html><html><script>alert(1)</script>",
		"html-leading":  "  \n<html><body>",
		"svg":           `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`,
		"svg-xml":       `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>`,
		"exe":           "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00",
		"elf":           "\x7fELF\x02\x01\x01\x00",
		"pdf":           "%PDF-1.7\n",
		"zip":           "PK\x03\x04\x14\x00",
		"text":          "hello world",
		"json":          `{"a":1}`,
		"empty":         "",
		"png-truncated": "\x89PNG\r\n",
		"jpeg-short":    "\xff\xd8",
		"riff-wave":     "RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
		"riff-webp-bad": "RIFF\x24\x00\x00\x00WEBPXXXX\x00\x00",
		"gif-bad":       "GIF88a\x01\x00",
		"bmp":           "BM\x1e\x00\x00\x00\x00\x00",
		"ico":           "\x00\x00\x01\x00\x01\x00",
	} {
		if ct, ok := Detect([]byte(head)); ok {
			t.Errorf("%s: accepted as %s", name, ct)
		}
	}
}

func TestExtAndAccepted(t *testing.T) {
	for ct, ext := range map[string]string{PNG: ".png", JPEG: ".jpg", GIF: ".gif", WebP: ".webp", "text/html": ""} {
		if Ext(ct) != ext || Accepted(ct) != (ext != "") {
			t.Errorf("%s: Ext %q", ct, Ext(ct))
		}
	}
}

// FuzzDetect: whatever is accepted starts with that format's magic bytes.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{pngHead, jpegHead, gifHead, webpHead, "<html>", "<svg/>", "RIFF\x00\x00\x00\x00WEBPVP8"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, ok := Detect(b)
		if !ok {
			return
		}
		s := string(b)
		var magic bool
		switch ct {
		case PNG:
			magic = strings.HasPrefix(s, "\x89PNG\r\n\x1a\n")
		case JPEG:
			magic = strings.HasPrefix(s, "\xff\xd8\xff")
		case GIF:
			magic = strings.HasPrefix(s, "GIF8")
		case WebP:
			magic = strings.HasPrefix(s, "RIFF") && len(s) >= 16 && s[8:15] == "WEBPVP8"
		}
		if !magic || !Accepted(ct) {
			t.Fatalf("accepted %q as %s", b, ct)
		}
	})
}

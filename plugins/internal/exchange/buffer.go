package exchange

import (
	"fmt"

	"github.com/edgeguard/edgeguard/pkg/headername"
)

// Header-count limits. Kong's kong.request.get_headers(max) stops silently
// at max headers and refuses max > 1000, so a host asks for MaxHeaders+1
// and MaxHeaders is at most 999.
const (
	DefaultMaxHeaders = 100
	MaxMaxHeaders     = 999
)

// ClampMaxHeaders is the header limit a host reads with for a configured
// n: DefaultMaxHeaders for n <= 0, at most MaxMaxHeaders.
func ClampMaxHeaders(n int) int {
	switch {
	case n <= 0:
		return DefaultMaxHeaders
	case n > MaxMaxHeaders:
		return MaxMaxHeaders
	}
	return n
}

// MaxHeadersOption checks a plugin's max_headers option (0: the default)
// and returns the limit it sets.
func MaxHeadersOption(n int) (int, error) {
	if n < 0 || n > MaxMaxHeaders {
		return 0, fmt.Errorf("max_headers %d is outside 1..%d", n, MaxMaxHeaders)
	}
	return ClampMaxHeaders(n), nil
}

// CountValues is the number of header values (lines) in h.
func CountValues(h map[string][]string) int {
	n := 0
	for _, v := range h {
		n += len(v)
	}
	return n
}

// ExitHeaders are the headers of an exit: the buffered response headers
// (one per name) with headers merged over them (headers win, names compared
// in ASCII case).
func ExitHeaders(buffered []Header, headers map[string]string) map[string]string {
	out := make(map[string]string, len(buffered)+len(headers))
	for _, r := range buffered {
		if !hasFold(headers, r.Name) {
			out[r.Name] = r.Value
		}
	}
	for k, v := range headers {
		out[k] = v
	}
	return out
}

func hasFold(m map[string]string, name string) bool {
	for k := range m {
		if headername.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// Header is one buffered header line.
type Header struct{ Name, Value string }

// Buffer is the header buffering both hosts' adapters share (kongadapter under
// Kong, tests): upstream sets and clears and response headers
// wait for one flush, and nothing is buffered once the request has exited.
// An adapter embeds it, calls MarkExited in its Exit and Reset when it
// flushes.
type Buffer struct {
	// Upstream are the upstream headers to set (one per name, any ASCII
	// case); Clears the client headers to remove upstream (each name once);
	// Response the client response headers (one per name).
	Upstream []Header
	Clears   []string
	Response []Header
	exited   bool
}

// SetUpstreamHeader buffers an upstream header; a later set of the same
// name (any ASCII case) replaces it.
func (b *Buffer) SetUpstreamHeader(name, value string) {
	if b.exited {
		return
	}
	b.Upstream = setHeader(b.Upstream, name, value)
}

// ClearUpstreamHeader buffers the removal of a client header (every line of
// that name, any ASCII case) from the upstream request, and drops an earlier
// buffered set of that name.
func (b *Buffer) ClearUpstreamHeader(name string) {
	if b.exited {
		return
	}
	b.Upstream = removeHeader(b.Upstream, name)
	for _, c := range b.Clears {
		if headername.EqualFold(c, name) {
			return
		}
	}
	b.Clears = append(b.Clears, name)
}

// SetResponseHeader buffers a header of the client response; a later set
// of the same name (any ASCII case) replaces it.
func (b *Buffer) SetResponseHeader(name, value string) {
	if b.exited {
		return
	}
	b.Response = setHeader(b.Response, name, value)
}

// Exited reports whether MarkExited was called.
func (b *Buffer) Exited() bool { return b.exited }

// MarkExited records the exit; it reports false when the request had
// already exited (the second Exit is a no-op).
func (b *Buffer) MarkExited() bool {
	if b.exited {
		return false
	}
	b.exited = true
	return true
}

// Reset drops everything buffered (after a flush or an exit).
func (b *Buffer) Reset() { b.Upstream, b.Clears, b.Response = nil, nil, nil }

// IndexHeader is the index of name (any ASCII case) in list, or -1.
func IndexHeader(list []Header, name string) int {
	for i, h := range list {
		if headername.EqualFold(h.Name, name) {
			return i
		}
	}
	return -1
}

func setHeader(list []Header, name, value string) []Header {
	if i := IndexHeader(list, name); i >= 0 {
		list[i] = Header{name, value}
		return list
	}
	return append(list, Header{name, value})
}

func removeHeader(list []Header, name string) []Header {
	out := list[:0]
	for _, h := range list {
		if !headername.EqualFold(h.Name, name) {
			out = append(out, h)
		}
	}
	return out
}

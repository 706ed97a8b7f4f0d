package exchange

import "github.com/edgeguard/edgeguard/pkg/headername"

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
	// requestID is header-guard's request id (RequestIDHolder); Reset
	// keeps it: it is the request's, not a buffered write.
	requestID string
}

var _ RequestIDHolder = (*Buffer)(nil)

// SetRequestID keeps the request id header-guard assigned to the request.
func (b *Buffer) SetRequestID(id string) { b.requestID = id }

// RequestID is the id SetRequestID kept, or "".
func (b *Buffer) RequestID() string { return b.requestID }

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

// Package faultproxy is a TCP proxy on loopback that a test can take down
// and bring back on the same address: the components behind it (Keycloak,
// Redis, llm-api's internal listener) keep running, and everything that
// reaches them through the proxy sees what it would see if they stopped —
// connections refused, open connections reset. A test can also tap it: keep
// a copy of what clients send, to see the exact request a component got.
package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy forwards every connection to its target while up.
type Proxy struct {
	addr string

	mu     sync.Mutex
	target string
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup

	tapMax int                        // 0: not tapping
	taps   map[net.Conn]*bytes.Buffer // per client connection, while tapping
}

// New listens on a free loopback port and forwards to target (host:port;
// empty: set it later with SetTarget, connections are closed until then).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	return p, nil
}

// Addr is the proxy's host:port (stable across Stop and Start).
func (p *Proxy) Addr() string { return p.addr }

// SetTarget changes where new connections go.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Stop closes the listener and every open connection: the target is
// unreachable through the proxy until Start.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Start listens again on the same address.
func (p *Proxy) Start() error {
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

// Tap starts keeping a copy of the bytes clients send through the proxy
// (at most max bytes per connection; the rest is not kept), on open
// connections and new ones alike. The returned function stops tapping and
// returns the copies, one per connection that sent anything meanwhile.
func (p *Proxy) Tap(max int) (stop func() [][]byte) {
	p.mu.Lock()
	p.tapMax, p.taps = max, map[net.Conn]*bytes.Buffer{}
	p.mu.Unlock()
	return func() [][]byte {
		p.mu.Lock()
		defer p.mu.Unlock()
		var out [][]byte
		for _, b := range p.taps {
			out = append(out, bytes.Clone(b.Bytes()))
		}
		p.tapMax, p.taps = 0, nil
		return out
	}
}

// tapped copies what client sent, while tapping.
func (p *Proxy) tapped(client net.Conn, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tapMax == 0 {
		return
	}
	buf := p.taps[client]
	if buf == nil {
		buf = &bytes.Buffer{}
		p.taps[client] = buf
	}
	if room := p.tapMax - buf.Len(); room > 0 {
		buf.Write(b[:min(len(b), room)])
	}
}

// tapReader is a client connection's reading side, copied while tapping.
type tapReader struct {
	p *Proxy
	c net.Conn
}

func (r tapReader) Read(b []byte) (int, error) {
	n, err := r.c.Read(b)
	if n > 0 {
		r.p.tapped(r.c, b[:n])
	}
	return n, err
}

// Close stops the proxy for good.
func (p *Proxy) Close() { p.Stop() }

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) pipe(client net.Conn) {
	if !p.track(client) {
		_ = client.Close()
		return
	}
	defer p.untrack(client)
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" {
		return
	}
	upstream, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	if !p.track(upstream) {
		_ = upstream.Close()
		return
	}
	defer p.untrack(upstream)
	done := make(chan struct{}, 2)
	cp := func(dst net.Conn, src io.Reader) {
		_, err := io.Copy(dst, src)
		if err == nil || errors.Is(err, net.ErrClosed) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
		done <- struct{}{}
	}
	go cp(upstream, tapReader{p, client})
	go cp(client, upstream)
	<-done
	<-done
}

// Package pbserve is a minimal plugin server for Kong's ProtoBuf:1
// plugin-server protocol — the one go-pdk v0.11.2's server.StartServer
// speaks — that differs from go-pdk's in one thing only: what the plugin
// writes to the socket is buffered and sent in one write when it next reads
// (or ends the event). go-pdk's bridge writes every frame as two writes (a
// 4-byte length, then the data), so one PDK call is four write syscalls
// and the end of an event four more, and Kong's worker may wake up for each.
//
// It exists to measure, in `make load` (bench/cmd/emptyplugin), how much of
// a PDK round trip's cost is that framing rather than the protocol's
// inherent ping-pong. It is NOT used by edgeguard's plugins: it serves only
// the access phase, keeps no instance statistics and does not expire
// instances; go-pdk remains the production server.
package pbserve

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

// MaxFrame bounds one frame (Kong's config JSON and PDK answers are far
// smaller).
const MaxFrame = 16 << 20

// ErrProtocol is wrapped by every malformed-input error.
var ErrProtocol = errors.New("pbserve: protocol error")

// Accesser is a plugin config with an access handler (as go-pdk's).
type Accesser interface{ Access(*pdk.PDK) }

// Server holds the instances of one plugin.
type Server struct {
	New func() Accesser // a fresh config, decoded from Kong's JSON

	mu        sync.RWMutex
	instances map[int32]Accesser
}

// conn buffers writes until the next read: a request/answer exchange then
// costs one write syscall per direction.
type conn struct {
	net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newConn(c net.Conn) *conn {
	return &conn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), w: bufio.NewWriterSize(c, 16<<10)}
}

func (c *conn) Read(p []byte) (int, error) {
	if c.w.Buffered() > 0 {
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
	}
	return c.r.Read(p)
}

func (c *conn) Write(p []byte) (int, error) { return c.w.Write(p) }

func readFrame(r io.Reader) ([]byte, error) {
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, err
	}
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

func writeFrame(w io.Writer, b []byte) error {
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], uint32(len(b)))
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// ServeConn answers Kong's calls on one connection until it closes or
// sends something this server does not handle (the connection is then
// closed without an answer, as go-pdk does: Kong resets the instance).
func (s *Server) ServeConn(nc net.Conn) error {
	defer nc.Close()
	c := newConn(nc)
	for {
		b, err := readFrame(c)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var call kong_plugin_protocol.RpcCall
		if err := proto.Unmarshal(b, &call); err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		ret, err := s.handle(c, &call)
		if err != nil {
			return err
		}
		out, err := proto.Marshal(ret)
		if err != nil {
			return err
		}
		if err := writeFrame(c, out); err != nil {
			return err
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
	}
}

func status(name string, id int32) *kong_plugin_protocol.RpcReturn_InstanceStatus {
	return &kong_plugin_protocol.RpcReturn_InstanceStatus{InstanceStatus: &kong_plugin_protocol.InstanceStatus{
		Name: name, InstanceId: id, StartedAt: time.Now().Unix(),
	}}
}

func (s *Server) instance(id int32) (Accesser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in, ok := s.instances[id]
	if !ok {
		return nil, fmt.Errorf("no plugin instance %d", id)
	}
	return in, nil
}

func (s *Server) handle(c *conn, call *kong_plugin_protocol.RpcCall) (*kong_plugin_protocol.RpcReturn, error) {
	ret := &kong_plugin_protocol.RpcReturn{Sequence: call.Sequence}
	switch m := call.Call.(type) {
	case *kong_plugin_protocol.RpcCall_CmdStartInstance:
		var meta struct {
			Seq int32 `json:"__seq__"`
		}
		if err := json.Unmarshal(m.CmdStartInstance.Config, &meta); err != nil {
			return nil, fmt.Errorf("decoding config metadata: %w", err)
		}
		cfg := s.New()
		if err := json.Unmarshal(m.CmdStartInstance.Config, cfg); err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
		s.mu.Lock()
		if s.instances == nil {
			s.instances = map[int32]Accesser{}
		}
		id := meta.Seq
		for id == 0 || (meta.Seq == 0 && s.instances[id] != nil) {
			id = rand.Int32()
		}
		s.instances[id] = cfg
		s.mu.Unlock()
		ret.Return = status(m.CmdStartInstance.Name, id)
	case *kong_plugin_protocol.RpcCall_CmdGetInstanceStatus:
		if _, err := s.instance(m.CmdGetInstanceStatus.InstanceId); err != nil {
			return nil, err
		}
		ret.Return = status("---", m.CmdGetInstanceStatus.InstanceId)
	case *kong_plugin_protocol.RpcCall_CmdCloseInstance:
		id := m.CmdCloseInstance.InstanceId
		if _, err := s.instance(id); err != nil {
			return nil, err
		}
		s.mu.Lock()
		delete(s.instances, id)
		s.mu.Unlock()
		ret.Return = status("---", id)
	case *kong_plugin_protocol.RpcCall_CmdHandleEvent:
		in, err := s.instance(m.CmdHandleEvent.InstanceId)
		if err != nil {
			return nil, err
		}
		if m.CmdHandleEvent.EventName != "access" {
			return nil, fmt.Errorf("undefined method %s", m.CmdHandleEvent.EventName)
		}
		in.Access(pdk.Init(c))
		if err := writeFrame(c, nil); err != nil { // the end of the event's PDK calls
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: RPC call of type %T", ErrProtocol, call.Call)
	}
	return ret, nil
}

// SocketPath is where go-pdk's server listens, and so where Kong looks:
// <-kong-prefix>/<executable name>.socket.
func SocketPath(prefix string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(prefix, filepath.Base(exe)+".socket"), nil
}

// ListenAndServe listens where Kong expects this plugin server (the
// -kong-prefix flag go-pdk's server package registers) and serves every
// connection.
func (s *Server) ListenAndServe() error {
	prefix := "/usr/local/kong"
	if f := flag.Lookup("kong-prefix"); f != nil {
		prefix = f.Value.String()
	}
	path, err := SocketPath(prefix)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer ln.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() { _ = s.ServeConn(c) }()
	}
}

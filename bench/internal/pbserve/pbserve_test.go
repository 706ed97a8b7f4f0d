package pbserve

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

type testConfig struct {
	Calls int `json:"calls"`
	got   []string
}

func (c *testConfig) Access(k *pdk.PDK) {
	for range c.Calls {
		m, err := k.Request.GetMethod()
		if err != nil {
			return
		}
		c.got = append(c.got, m)
	}
}

// countConn counts the writes the server makes (each one a syscall on a
// real socket).
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// kong plays Kong's side of pb_rpc.lua on a connection.
type kong struct {
	t *testing.T
	c net.Conn
}

func (k kong) send(b []byte) {
	k.t.Helper()
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], uint32(len(b)))
	if _, err := k.c.Write(append(l[:], b...)); err != nil {
		k.t.Fatal(err)
	}
}

func (k kong) recv() []byte {
	k.t.Helper()
	_ = k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [4]byte
	if _, err := io.ReadFull(k.c, l[:]); err != nil {
		k.t.Fatal(err)
	}
	b := make([]byte, binary.LittleEndian.Uint32(l[:]))
	if _, err := io.ReadFull(k.c, b); err != nil {
		k.t.Fatal(err)
	}
	return b
}

func (k kong) call(c *kong_plugin_protocol.RpcCall) {
	k.t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		k.t.Fatal(err)
	}
	k.send(b)
}

func (k kong) ret() *kong_plugin_protocol.RpcReturn {
	k.t.Helper()
	var r kong_plugin_protocol.RpcReturn
	if err := proto.Unmarshal(k.recv(), &r); err != nil {
		k.t.Fatal(err)
	}
	return &r
}

func start(t *testing.T) (kong, *countConn, *testConfig, chan error) {
	cfg := &testConfig{}
	s := &Server{New: func() Accesser { return cfg }}
	a, b := net.Pipe()
	cc := &countConn{Conn: a}
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(cc) }()
	t.Cleanup(func() { b.Close() })
	return kong{t, b}, cc, cfg, done
}

// The exchange is go-pdk's, byte for byte on the plugin's side of a PDK
// call (method frame, empty args frame), and each direction change is one
// write.
func TestAnEventWithPDKCallsSpeaksGoPDKsProtocolInOneWritePerExchange(t *testing.T) {
	k, cc, cfg, _ := start(t)
	k.call(&kong_plugin_protocol.RpcCall{Sequence: 1, Call: &kong_plugin_protocol.RpcCall_CmdStartInstance{
		CmdStartInstance: &kong_plugin_protocol.CmdStartInstance{Name: "x", Config: []byte(`{"__seq__":7,"calls":2}`)}}})
	if r := k.ret(); r.Sequence != 1 || r.GetInstanceStatus().GetInstanceId() != 7 || r.GetInstanceStatus().GetName() != "x" {
		t.Fatalf("start: %v", r)
	}
	if cfg.Calls != 2 {
		t.Fatalf("config not decoded: %+v", cfg)
	}
	w0 := cc.writes.Load()
	k.call(&kong_plugin_protocol.RpcCall{Sequence: 2, Call: &kong_plugin_protocol.RpcCall_CmdHandleEvent{
		CmdHandleEvent: &kong_plugin_protocol.CmdHandleEvent{InstanceId: 7, EventName: "access"}}})
	for _, m := range []string{"GET", "POST"} {
		if got := k.recv(); string(got) != "kong.request.get_method" {
			t.Fatalf("method frame %q", got)
		}
		if got := k.recv(); len(got) != 0 {
			t.Fatalf("args frame %q", got)
		}
		ans, _ := proto.Marshal(&kong_plugin_protocol.String{V: m})
		k.send(ans)
	}
	if got := k.recv(); len(got) != 0 {
		t.Fatalf("end-of-event frame %q", got)
	}
	if r := k.ret(); r.Sequence != 2 || r.Return != nil {
		t.Fatalf("event return %v", r)
	}
	if !bytes.Equal([]byte(cfg.got[0]+cfg.got[1]), []byte("GETPOST")) {
		t.Fatalf("answers %v", cfg.got)
	}
	// two PDK calls and the end of the event: three writes
	if n := cc.writes.Load() - w0; n != 3 {
		t.Fatalf("%d writes for the event, want 3", n)
	}
	k.call(&kong_plugin_protocol.RpcCall{Sequence: 3, Call: &kong_plugin_protocol.RpcCall_CmdCloseInstance{
		CmdCloseInstance: &kong_plugin_protocol.CmdCloseInstance{InstanceId: 7}}})
	if r := k.ret(); r.GetInstanceStatus().GetInstanceId() != 7 {
		t.Fatalf("close: %v", r)
	}
}

// An event for an instance it does not know closes the connection without
// an answer: Kong then resets its instances and starts them again.
func TestAnUnknownInstanceClosesTheConnection(t *testing.T) {
	k, _, _, done := start(t)
	k.call(&kong_plugin_protocol.RpcCall{Sequence: 1, Call: &kong_plugin_protocol.RpcCall_CmdHandleEvent{
		CmdHandleEvent: &kong_plugin_protocol.CmdHandleEvent{InstanceId: 99, EventName: "access"}}})
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error for an unknown instance")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection stayed open")
	}
	if _, err := k.c.Read(make([]byte, 1)); err == nil {
		t.Fatal("an answer was sent")
	}
}

func TestOversizedFramesAreRefused(t *testing.T) {
	k, _, _, done := start(t)
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], MaxFrame+1)
	go func() { _, _ = k.c.Write(l[:]) }()
	if err := <-done; err == nil {
		t.Fatal("an oversized frame was accepted")
	}
}

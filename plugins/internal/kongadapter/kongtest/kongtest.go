// Package kongtest runs Kong handlers against go-pdk's test environment
// (github.com/Kong/go-pdk/test) through a PDK whose every call is recorded as
// it crosses the wire, so tests can assert the exact PDK call list a plugin
// makes (and check it against kongadapter.Adapter.Calls).
//
// Like Kong, an Env ends the PDK event with kong.response.exit (go-pdk's
// Response.Exit closes the event's connection): a later call fails with
// net.ErrClosed (under Kong: "use of closed network connection") and fails
// the test, naming the call. go-pdk's own test environment lets such a call
// fail silently, which hid reads made after the exit.
//
// It is for tests only. go-pdk's test environment is narrow: the client IP
// is always 10.10.10.1, only GET/POST/PUT/PATCH are accepted (POST, PUT and
// PATCH need a body), kong.request.get_headers ignores its max argument, and
// the upstream is an echo.
package kongtest

import (
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/Kong/go-pdk"
	"github.com/Kong/go-pdk/bridge"
	"github.com/Kong/go-pdk/bridge/bridgetest"
	"github.com/Kong/go-pdk/client"
	"github.com/Kong/go-pdk/ctx"
	"github.com/Kong/go-pdk/ip"
	"github.com/Kong/go-pdk/log"
	"github.com/Kong/go-pdk/nginx"
	"github.com/Kong/go-pdk/node"
	"github.com/Kong/go-pdk/request"
	"github.com/Kong/go-pdk/response"
	"github.com/Kong/go-pdk/router"
	"github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"github.com/Kong/go-pdk/service"
	service_request "github.com/Kong/go-pdk/service/request"
	service_response "github.com/Kong/go-pdk/service/response"
	"github.com/Kong/go-pdk/test"
	"google.golang.org/protobuf/proto"
)

// Call is one PDK call as it crossed the wire.
type Call struct {
	Method string
	Args   []byte // protobuf-encoded arguments
}

// Env is a go-pdk test environment with a recording PDK.
type Env struct {
	*test.TestEnv
	// PDK is the recording PDK to pass to a handler.
	PDK *pdk.PDK
	// Fail lists PDK methods whose reply is corrupted, so the call returns
	// an error (only calls that decode a reply can fail this way).
	Fail map[string]bool

	mu    sync.Mutex
	calls []Call
	// afterExit are the calls attempted after kong.response.exit.
	afterExit []string
}

// New builds an Env for req; it fails the test when go-pdk refuses req.
func New(t *testing.T, req test.Request) *Env {
	t.Helper()
	te, err := test.New(t, req)
	if err != nil {
		t.Fatalf("go-pdk test environment: %v", err)
	}
	e := &Env{TestEnv: te, Fail: map[string]bool{}}
	b := bridge.New(&eventConn{Conn: bridgetest.MockFunc(e), env: e, t: t})
	e.PDK = &pdk.PDK{
		Client:          client.Client{PdkBridge: b},
		Ctx:             ctx.Ctx{PdkBridge: b},
		Log:             log.Log{PdkBridge: b},
		Nginx:           nginx.Nginx{PdkBridge: b},
		Request:         request.Request{PdkBridge: b},
		Response:        response.Response{PdkBridge: b},
		Router:          router.Router{PdkBridge: b},
		IP:              ip.Ip{PdkBridge: b},
		Node:            node.Node{PdkBridge: b},
		Service:         service.Service{PdkBridge: b},
		ServiceRequest:  service_request.Request{PdkBridge: b},
		ServiceResponse: service_response.Response{PdkBridge: b},
	}
	return e
}

// Handle records the call and lets go-pdk's test environment answer it.
// (Internal: called by the mock connection.)
func (e *Env) Handle(method string, args []byte) []byte {
	e.mu.Lock()
	e.calls = append(e.calls, Call{Method: method, Args: slices.Clone(args)})
	fail := e.Fail[method]
	e.mu.Unlock()
	out := e.TestEnv.Handle(method, args)
	if fail {
		return []byte{0xff, 0xff} // a truncated protobuf field: the decode fails
	}
	return out
}

// eventConn is the plugin's end of the event: once go-pdk closes it (after
// kong.response.exit, as Kong does), every call fails with net.ErrClosed and
// fails the test.
type eventConn struct {
	net.Conn
	env *Env
	t   testing.TB

	mu        sync.Mutex
	closed    bool
	sawLength bool // the frame length of a call's name was written
}

func (c *eventConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.Conn.Close()
}

// Write passes frames on until the event is closed. After that, a call
// writes its name's 4-byte length and then its name: the name is reported
// and the write fails.
func (c *eventConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.closed {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	if len(p) == 4 && !c.sawLength {
		c.sawLength = true
		c.mu.Unlock()
		return len(p), nil
	}
	c.sawLength = false
	c.mu.Unlock()
	c.env.mu.Lock()
	c.env.afterExit = append(c.env.afterExit, string(p))
	c.env.mu.Unlock()
	c.t.Errorf("PDK call %q after kong.response.exit: Kong has closed the event (use of closed network connection)", p)
	return 0, net.ErrClosed
}

// AfterExit returns the PDK calls attempted after kong.response.exit (each
// also failed the test).
func (e *Env) AfterExit() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.afterExit)
}

// Access runs the handler's Access method with the recording PDK.
func (e *Env) Access(h interface{ Access(*pdk.PDK) }) {
	h.Access(e.PDK)
}

// Calls returns the names of the PDK calls made so far, in order.
func (e *Env) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.calls))
	for i, c := range e.calls {
		out[i] = c.Method
	}
	return out
}

// HeadersMax returns the max argument of the last kong.request.get_headers
// call, or -1 when there was none.
func (e *Env) HeadersMax() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.calls) - 1; i >= 0; i-- {
		if e.calls[i].Method == "kong.request.get_headers" {
			var n kong_plugin_protocol.Int
			if proto.Unmarshal(e.calls[i].Args, &n) != nil {
				return -1
			}
			return int(n.V)
		}
	}
	return -1
}

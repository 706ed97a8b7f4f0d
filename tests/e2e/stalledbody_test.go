package e2e

import (
	"bufio"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStalledBodiesGet408: a client that stops sending its body — a
// Content-Length larger than what it sends, or a chunked body that stops
// after one chunk — is answered 408 by Kong after kong.conf's
// nginx_http_client_body_timeout (15 s) and the connection is closed,
// instead of being held (an attack run found such requests open for
// minutes behind the in-process gateway that stood in for Kong).
func TestStalledBodiesGet408(t *testing.T) {
	_, e := requireEdge(t)
	u, err := url.Parse(e.gw)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"short Content-Length on the token endpoint": "POST /realms/jan/protocol/openid-connect/token HTTP/1.1\r\nHost: " + u.Host +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant",
		"one chunk on chat completions": "POST /v1/chat/completions HTTP/1.1\r\nHost: " + u.Host +
			"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
		"short Content-Length on logout": "POST /auth/logout HTTP/1.1\r\nHost: " + u.Host +
			"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"re",
	}
	var wg sync.WaitGroup
	for name, req := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(45 * time.Second))
			if _, err := c.Write([]byte(req)); err != nil {
				t.Errorf("%s: write: %v", name, err)
				return
			}
			status, err := bufio.NewReader(c).ReadString('\n')
			took := time.Since(start)
			switch {
			case err != nil:
				t.Errorf("%s: no answer within 45 s (%v)", name, err)
			case !strings.HasPrefix(status, "HTTP/1.1 408"):
				t.Errorf("%s: %q after %v, want 408", name, strings.TrimSpace(status), took.Round(time.Second))
			case took < 10*time.Second:
				t.Errorf("%s: 408 after only %v (client_body_timeout is 15 s)", name, took)
			default:
				t.Logf("%s: 408 after %v", name, took.Round(100*time.Millisecond))
			}
		}()
	}
	wg.Wait()
}

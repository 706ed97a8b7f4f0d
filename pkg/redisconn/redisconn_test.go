package redisconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

const pw = "p4ssw0rd-never-printed"

func TestValidateRefusesBadConfigsWithoutEchoingThem(t *testing.T) {
	cases := map[string]Config{
		"no address":           {},
		"url instead of addr":  {Addrs: []string{"redis://user:" + pw + "@h:6379"}},
		"no port":              {Addrs: []string{"h"}},
		"cluster db":           {Addrs: []string{"a:1", "b:1"}, DB: 1},
		"cluster and sentinel": {Addrs: []string{"a:1"}, Cluster: true, MasterName: "m"},
		"negative db":          {Addrs: []string{"a:1"}, DB: -1},
		"ca without tls":       {Addrs: []string{"a:1"}, TLSCAFile: "/ca.pem"},
		"negative pool":        {Addrs: []string{"a:1"}, PoolSize: -1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			c.Password = pw
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v", err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatal("error carries the password")
			}
			if _, err := New(c); !errors.Is(err, ErrInvalid) {
				t.Fatalf("New = %v", err)
			}
		})
	}
}

func TestConfigNeverPrintsPasswords(t *testing.T) {
	c := Config{Addrs: []string{"h:1"}, Password: pw, SentinelPassword: pw + "s"}
	var logs bytes.Buffer
	l := zerolog.New(&logs)
	l.Info().Object("redis", c).Msg("x")
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logs.String()} {
		if strings.Contains(out, pw) {
			t.Fatalf("password printed: %s", out)
		}
	}
}

func TestNewBuildsEachTopology(t *testing.T) {
	for name, c := range map[string]Config{
		"single":   {Addrs: []string{"127.0.0.1:1"}},
		"cluster":  {Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		"sentinel": {Addrs: []string{"127.0.0.1:1"}, MasterName: "m"},
		"tls":      {Addrs: []string{"127.0.0.1:1"}, TLS: true, TLSServerName: "redis"},
	} {
		cl, err := New(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = cl.Close()
	}
}

func TestSeveralAddressesMakeAClusterClientThatReloadsOnNodeFailures(t *testing.T) {
	for name, c := range map[string]Config{
		"several":     {Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		"one, forced": {Addrs: []string{"127.0.0.1:1"}, Cluster: true},
	} {
		cl, err := New(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := cl.(*redis.ClusterClient); !ok {
			t.Fatalf("%s: %T, want a Cluster client", name, cl)
		}
		_ = cl.Close()
	}
	for name, c := range map[string]Config{
		"single":   {Addrs: []string{"127.0.0.1:1"}},
		"sentinel": {Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MasterName: "m"},
	} {
		cl, err := New(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := cl.(*redis.ClusterClient); ok {
			t.Fatalf("%s: a Cluster client", name)
		}
		_ = cl.Close()
	}
}

// replyErr is an error reply of Redis, as go-redis types them (redis.Error).
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestNodeFailureIsNotARedisReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"nil reply", redis.Nil, false},
		{"moved", replyErr("MOVED 3999 127.0.0.1:6381"), false},
		{"noscript", replyErr("NOSCRIPT No matching script"), false},
		{"caller cancelled", fmt.Errorf("x: %w", context.Canceled), false},
		{"client closed", redis.ErrClosed, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"eof", io.EOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"i/o timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
	} {
		if got := nodeFailure(tc.err); got != tc.want {
			t.Errorf("%s: nodeFailure = %t, want %t", tc.name, got, tc.want)
		}
	}
}

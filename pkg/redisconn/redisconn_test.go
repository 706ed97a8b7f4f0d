package redisconn

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

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

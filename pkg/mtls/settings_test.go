package mtls_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/edgeguard/edgeguard/pkg/devpki"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/mtls"
	"github.com/edgeguard/edgeguard/pkg/mtls/mtlstest"
)

func read(strict bool, vars, files map[string]string) (mtls.Settings, error) {
	l := &envconf.Loader{Strict: strict, Getenv: func(k string) string { return vars[k] }, ReadFile: func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}}
	return mtls.Read(l)
}

func files(t *testing.T) (map[string]string, map[string]string) {
	ca := mtlstest.New(t, "services CA")
	srv := ca.Server(t, "media-api")
	client := ca.Client(t, devpki.Options{})
	return map[string]string{"TLS_CERT_FILE": "/tls/tls.crt", "TLS_KEY_FILE": "/tls/tls.key", "TLS_CLIENT_CA_FILE": "/tls/ca.crt"},
		map[string]string{"/tls/tls.crt": string(srv.CertPEM), "/tls/tls.key": string(srv.KeyPEM), "/tls/ca.crt": string(ca.CA.CertPEM),
			"/tls/client.crt": string(client.CertPEM), "/tls/client.key": string(client.KeyPEM), "/tls/other.key": string(ca.Server(t, "x").KeyPEM)}
}

func TestReadDefaultsToMTLSWithTheEdgeIdentity(t *testing.T) {
	vars, fs := files(t)
	s, err := read(true, vars, fs)
	if err != nil {
		t.Fatal(err)
	}
	if s.Plain || s.CertFile != "/tls/tls.crt" || len(s.ClientIdentities) != 1 || s.ClientIdentities[0].String() != mtls.DefaultClientIdentity {
		t.Fatalf("%+v", s)
	}
	vars["TLS_CLIENT_IDENTITY"] = "spiffe://cluster.local/ns/edge/sa/kong, edgeguard-edge"
	if s, err = read(true, vars, fs); err != nil || len(s.ClientIdentities) != 2 || s.Describe() != "mTLS, client identity spiffe://cluster.local/ns/edge/sa/kong or edgeguard-edge" {
		t.Fatalf("%+v %v", s, err)
	}
}

// TestReadReportsEveryFaultNamingItsVariable: every fault at once, one
// error each, starting with the variable, never a file's content.
func TestReadReportsEveryFaultNamingItsVariable(t *testing.T) {
	vars, fs := files(t)
	tests := []struct {
		name   string
		strict bool
		set    map[string]string
		want   []string
	}{
		{"nothing configured", false, map[string]string{"TLS_CERT_FILE": "", "TLS_KEY_FILE": "", "TLS_CLIENT_CA_FILE": ""},
			[]string{"TLS_CERT_FILE: required, ", "TLS_KEY_FILE: required, ", "TLS_CLIENT_CA_FILE: required, "}},
		{"plain HTTP in strict mode", true, map[string]string{"INSECURE_PLAIN_HTTP": "true"},
			[]string{"INSECURE_PLAIN_HTTP: cannot be true in strict mode"}},
		{"an unreadable switch and identity", false, map[string]string{"INSECURE_PLAIN_HTTP": "maybe", "TLS_CLIENT_IDENTITY": "spiffe://x/y?q, *.edge"},
			[]string{"INSECURE_PLAIN_HTTP: \"maybe\"", "TLS_CLIENT_IDENTITY: \"spiffe://x/y?q\"", "TLS_CLIENT_IDENTITY: \"*.edge\""}},
		{"missing files", true, map[string]string{"TLS_CERT_FILE": "/nope.crt", "TLS_CLIENT_CA_FILE": "/nope-ca.crt"},
			[]string{"TLS_CERT_FILE: cannot read /nope.crt", "TLS_CLIENT_CA_FILE: cannot read /nope-ca.crt"}},
		{"a key of another certificate", true, map[string]string{"TLS_KEY_FILE": "/tls/other.key"},
			[]string{"TLS_CERT_FILE: /tls/tls.crt with TLS_KEY_FILE /tls/other.key: the certificate and the key do not form a pair (private key does not match public key)"}},
		{"a client certificate as the server's", true, map[string]string{"TLS_CERT_FILE": "/tls/client.crt", "TLS_KEY_FILE": "/tls/client.key"},
			[]string{"TLS_CERT_FILE: /tls/client.crt is not a server certificate"}},
		{"a leaf as the client CA", true, map[string]string{"TLS_CLIENT_CA_FILE": "/tls/tls.crt"},
			[]string{"TLS_CLIENT_CA_FILE: /tls/tls.crt: certificate 1"}},
		{"a key as the client CA", true, map[string]string{"TLS_CLIENT_CA_FILE": "/tls/tls.key"},
			[]string{"TLS_CLIENT_CA_FILE: /tls/tls.key: a \"PRIVATE KEY\" block"}},
	}
	for _, tt := range tests {
		v := map[string]string{}
		for k, x := range vars {
			v[k] = x
		}
		for k, x := range tt.set {
			v[k] = x
		}
		_, err := read(tt.strict, v, fs)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		var joined interface{ Unwrap() []error }
		if !errors.As(err, &joined) || len(joined.Unwrap()) != len(tt.want) {
			t.Errorf("%s: %q; want %d faults", tt.name, err, len(tt.want))
			continue
		}
		for i, w := range tt.want {
			if got := joined.Unwrap()[i].Error(); !strings.HasPrefix(got, w) {
				t.Errorf("%s: fault %d %q; want it to start with %q", tt.name, i, got, w)
			}
		}
		if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), strings.Split(fs["/tls/tls.key"], "\n")[1]) {
			t.Errorf("%s: a fault shows a file's content", tt.name)
		}
	}
}

func TestPlainHTTPOnlyWhenAskedOutsideStrictMode(t *testing.T) {
	s, err := read(false, map[string]string{"INSECURE_PLAIN_HTTP": "true"}, nil)
	if err != nil || !s.Plain || s.Describe() != "plain HTTP" {
		t.Fatalf("%+v %v", s, err)
	}
	tc, err := s.TLSConfig(zerolog.Nop())
	if err != nil || tc != nil {
		t.Fatalf("plain: %v %v", tc, err)
	}
}

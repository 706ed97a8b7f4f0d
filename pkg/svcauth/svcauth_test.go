package svcauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
	"github.com/edgeguard/edgeguard/pkg/edgeid"
	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/pkg/testenv"
	"github.com/rs/zerolog"
)

var edgeJWKS = func() string {
	k, _, _ := ed25519.GenerateKey(rand.Reader)
	b, err := edgeid.PublicJWKS(k)
	if err != nil {
		panic(err)
	}
	return string(b)
}()

var files = map[string]string{
	"/edge.jwks":  edgeJWKS,
	"/empty":      " \n",
	"/private":    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE\n-----END PRIVATE KEY-----",
	"/not-a-jwks": `{"keys":[]}`,
}

func loader(strict bool, kv ...string) *envconf.Loader {
	env := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return &envconf.Loader{Strict: strict, Getenv: func(k string) string { return env[k] }, ReadFile: func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}}
}

func TestReadDefaults(t *testing.T) {
	c, err := Read(loader(true, "EDGE_IDENTITY_JWKS_FILE", "/edge.jwks"), Options{ServiceName: "media-api", Switchable: true})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Enabled || c.AcceptJWT || c.ServiceName != "media-api" || string(c.EdgeIdentityJWKS) != edgeJWKS ||
		strings.Join(c.Audience, ",") != "jan-api" || strings.Join(c.AllowedAZP, ",") != "jan-cli,jan-agent,jan-web,guest-login" {
		t.Fatalf("%+v", c)
	}
}

func TestReadAccepts(t *testing.T) {
	jwt := []string{"AUTH_ACCEPT_JWT", "true", "AUTH_ISSUER", "https://id.example/realms/jan"}
	tests := []struct {
		name   string
		strict bool
		o      Options
		env    []string
	}{
		{"jwt only outside strict mode", false, Options{ServiceName: "a"}, jwt},
		{"jwt only in strict mode where allowed", true, Options{ServiceName: "a", JWTOnlyInStrict: true}, jwt},
		{"auth off outside strict mode", false, Options{ServiceName: "a", Switchable: true}, []string{"AUTH_ENABLED", "false"}},
		{"AUTH_ENABLED ignored where not offered", true, Options{ServiceName: "a", JWTOnlyInStrict: true}, append([]string{"AUTH_ENABLED", "false"}, jwt...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Read(loader(tc.strict, tc.env...), tc.o); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReadRefusesWithTheVariableName(t *testing.T) {
	edge := []string{"EDGE_IDENTITY_JWKS_FILE", "/edge.jwks"}
	o := Options{ServiceName: "llm-api", Switchable: true}
	tests := []struct {
		strict bool
		o      Options
		env    []string
		want   string
	}{
		{true, o, append([]string{"AUTH_ENABLED", "false"}, edge...), "AUTH_ENABLED: cannot be false in strict mode"},
		{true, o, append([]string{"AUTH_ENABLED", "perhaps"}, edge...), "AUTH_ENABLED: "},
		{true, o, append([]string{"AUTH_ACCEPT_JWT", "perhaps"}, edge...), "AUTH_ACCEPT_JWT: "},
		{true, o, append([]string{"AUTH_ACCEPT_JWT", "true"}, edge...), "AUTH_ISSUER: required"},
		{true, o, append([]string{"AUTH_ACCEPT_JWT", "true", "AUTH_ISSUER", "id.example"}, edge...), "AUTH_ISSUER: not an absolute"},
		{true, o, append([]string{"AUTH_ACCEPT_JWT", "true", "AUTH_ISSUER", "https://id.example", "AUTH_JWKS_URL", "https://u:p@id.example/certs"}, edge...), "AUTH_JWKS_URL: must not carry"},
		{true, o, append([]string{"SERVICE_NAME", "LLM API"}, edge...), "SERVICE_NAME: "},
		{true, o, []string{"AUTH_ACCEPT_JWT", "true", "AUTH_ISSUER", "https://id.example"}, "EDGE_IDENTITY_JWKS_FILE: required in strict mode"},
		{false, o, nil, "EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT"},
		{true, Options{ServiceName: "a", JWTOnlyInStrict: true}, nil, "EDGE_IDENTITY_JWKS_FILE: required unless AUTH_ACCEPT_JWT"},
		{true, o, []string{"EDGE_IDENTITY_JWKS_FILE", "/nope"}, "EDGE_IDENTITY_JWKS_FILE: cannot read /nope"},
		{true, o, []string{"EDGE_IDENTITY_JWKS_FILE", "/empty"}, "EDGE_IDENTITY_JWKS_FILE: /empty is empty"},
		{true, o, []string{"EDGE_IDENTITY_JWKS_FILE", "/not-a-jwks"}, "EDGE_IDENTITY_JWKS_FILE: /not-a-jwks is not a JWKS"},
		{true, o, []string{"EDGE_IDENTITY_JWKS_FILE", "/private"}, "EDGE_IDENTITY_JWKS_FILE: /private is not a JWKS"},
	}
	for _, tc := range tests {
		_, err := Read(loader(tc.strict, tc.env...), tc.o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want prefix %q", tc.env, err, tc.want)
			continue
		}
		// a file's content never reaches an error
		if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), `"keys"`) {
			t.Errorf("%v: error carries file content: %v", tc.env, err)
		}
	}
}

// Read reports every fault at once, one line each naming its variable;
// an invalid SERVICE_NAME does not make a good JWKS look bad.
func TestReadReportsEveryFaultAtOnce(t *testing.T) {
	o := Options{ServiceName: "llm-api", Switchable: true}
	for _, tc := range []struct {
		name   string
		strict bool
		env    []string
		want   []string
	}{
		{"strict, nothing set but a bad issuer", true, []string{"AUTH_ACCEPT_JWT", "true", "AUTH_ISSUER", "id.example", "AUTH_JWKS_URL", "https://u:p@x/"},
			[]string{"AUTH_ISSUER", "AUTH_JWKS_URL", "EDGE_IDENTITY_JWKS_FILE"}},
		{"auth off in strict mode, bad name, unreadable keys", true, []string{"AUTH_ENABLED", "false", "SERVICE_NAME", "LLM API", "EDGE_IDENTITY_JWKS_FILE", "/nope"},
			[]string{"AUTH_ENABLED", "SERVICE_NAME", "EDGE_IDENTITY_JWKS_FILE"}},
		{"bad switches", false, []string{"AUTH_ENABLED", "perhaps", "AUTH_ACCEPT_JWT", "perhaps"},
			[]string{"AUTH_ENABLED", "AUTH_ACCEPT_JWT", "EDGE_IDENTITY_JWKS_FILE"}},
		{"bad name, good keys", true, []string{"SERVICE_NAME", "LLM API", "EDGE_IDENTITY_JWKS_FILE", "/edge.jwks"},
			[]string{"SERVICE_NAME"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(loader(tc.strict, tc.env...), o)
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for line := range strings.SplitSeq(err.Error(), "\n") {
				name, _, _ := strings.Cut(line, ":")
				got = append(got, name)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || strings.Contains(err.Error(), "u:p") {
				t.Fatalf("faults %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

type fakeVerifier struct{}

func (fakeVerifier) Verify(context.Context, string) (*identity.Identity, error) {
	return nil, errors.New("fake")
}

func TestAuthenticatorChain(t *testing.T) {
	var logs testenv.Buffer
	log := zerolog.New(&logs)
	edge := Config{ServiceName: "a", EdgeIdentityJWKS: []byte(edgeJWKS)}
	tests := []struct {
		name      string
		c         Config
		jwt       edgehttp.Verifier
		want      []string
		wantBuilt bool
	}{
		{"edge only", edge, nil, []string{"*edgehttp.EdgeIdentity"}, false},
		{"edge then a given verifier", Config{ServiceName: "a", EdgeIdentityJWKS: []byte(edgeJWKS), AcceptJWT: true}, fakeVerifier{}, []string{"*edgehttp.EdgeIdentity", "*edgehttp.JWT"}, false},
		{"jwt built from AUTH_*", Config{ServiceName: "a", AcceptJWT: true, Issuer: "https://id.example/realms/jan", Audience: []string{"jan-api"}}, nil, []string{"*edgehttp.JWT"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chain, built, err := tc.c.Authenticator(tc.jwt, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			if built != nil {
				defer built.Close()
			}
			var got []string
			for _, a := range chain {
				got = append(got, typeName(a))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || (built != nil) != tc.wantBuilt {
				t.Fatalf("chain %v built %v", got, built != nil)
			}
		})
	}
	if _, _, err := (Config{ServiceName: "a"}).Authenticator(nil, nil, log); err == nil || !strings.HasPrefix(err.Error(), "EDGE_IDENTITY_JWKS_FILE: ") {
		t.Fatalf("empty chain: %v", err)
	}
	if !strings.Contains(logs.String(), `"message":"credentials accepted"`) {
		t.Fatalf("no log line: %s", logs.String())
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

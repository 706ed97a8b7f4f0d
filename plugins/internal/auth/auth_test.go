package auth

import (
	"errors"
	"net/http"
	"testing"

	"github.com/edgeguard/edgeguard/pkg/identity"
	"github.com/edgeguard/edgeguard/plugins/internal/exchange"
	"github.com/edgeguard/edgeguard/plugins/internal/pipeline"
)

// fakeAuth reads "x-cred": "dup" is a duplicate, "other" not mine, "bad" a
// refusal, anything else the identity of that subject.
type fakeAuth struct{}

func (fakeAuth) Find(h map[string][]string) (Credential, Found) {
	v := h["x-cred"]
	switch {
	case len(v) == 0:
		return nil, NotPresent
	case v[0] == "dup":
		return nil, Duplicate
	case v[0] == "other":
		return nil, NotMine
	}
	return v[0], Present
}

func (fakeAuth) Verify(_ *pipeline.Request, c Credential) (*identity.Identity, pipeline.Result) {
	if c.(string) == "bad" {
		return nil, pipeline.Deny(http.StatusUnauthorized, "token_invalid", "invalid token",
			map[string]string{"WWW-Authenticate": ChallengeInvalid})
	}
	return &identity.Identity{Subject: c.(string), AuthMethod: identity.MethodJWT, RealmRoles: []string{"user"}}, pipeline.Next
}

func (fakeAuth) Hide(ex exchange.Exchange, _ map[string][]string, _ Credential) {
	ex.ClearUpstreamHeader("x-cred")
}

type failingAsserter struct{}

func (failingAsserter) Add(exchange.Exchange, *identity.Identity) error { return errors.New("no key") }

func run(t *testing.T, host *exchange.Fake, fresh bool, stages ...pipeline.Stage) pipeline.Outcome {
	t.Helper()
	return pipeline.Run(host, pipeline.New("test", pipeline.Options{Fresh: fresh}, stages...))
}

func TestAuthenticateAnswersWhatEveryCredentialHasInCommon(t *testing.T) {
	tests := []struct {
		name     string
		cred     string // "" none
		stage    Authenticate
		status   int
		code     string
		www      string
		admitted string // subject recorded with the host
		strip    bool   // client identity headers stripped
	}{
		{"missing", "", Authenticate{}, 401, CodeCredentialMissing, ChallengeMissing, "", false},
		{"not mine is missing", "other", Authenticate{}, 401, CodeCredentialMissing, ChallengeMissing, "", false},
		{"missing but optional: strip only", "", Authenticate{Optional: true}, 0, "", "", "", true},
		{"duplicate", "dup", Authenticate{Optional: true}, 401, CodeDuplicateCredentials, ChallengeRequest, "", false},
		{"refused: never anonymous, even optional", "bad", Authenticate{Optional: true}, 401, "token_invalid", ChallengeInvalid, "", false},
		{"valid", "alice", Authenticate{}, 0, "", "", "alice", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string][]string{"X-User-ID": {"spoofed"}}
			if tt.cred != "" {
				h["X-Cred"] = []string{tt.cred}
			}
			f := exchange.NewFake("GET", "/", h)
			st := tt.stage
			st.Authenticator = fakeAuth{}
			out := run(t, f, true, &st, &Authorize{}, Admit{})
			if out.Status != tt.status || out.Code != tt.code || f.ExitHeaders["WWW-Authenticate"] != tt.www {
				t.Fatalf("outcome %+v, exit headers %v", out, f.ExitHeaders)
			}
			if got := f.Identity; (got == nil) != (tt.admitted == "") || (got != nil && got.Subject != tt.admitted) {
				t.Fatalf("recorded identity %+v, want %q", got, tt.admitted)
			}
			if f.WasCleared("x-user-id") != tt.strip {
				t.Fatalf("x-user-id cleared = %v, want %v", !tt.strip, tt.strip)
			}
		})
	}
}

// A credential on a request an earlier plugin authenticated must name the
// same subject; without one the request passes, and nothing is re-admitted.
func TestConfirmPriorIdentity(t *testing.T) {
	bob := &identity.Identity{Subject: "bob", AuthMethod: identity.MethodJWT}
	for _, tt := range []struct {
		cred   string
		status int
		code   string
	}{{"", 0, ""}, {"bob", 0, ""}, {"alice", 401, CodeSubjectMismatch}} {
		h := map[string][]string{"X-User-ID": {"spoofed"}}
		if tt.cred != "" {
			h["X-Cred"] = []string{tt.cred}
		}
		f := exchange.NewFake("GET", "/", h)
		f.Identity = bob // recorded by an earlier plugin
		out := run(t, f, false, &Authenticate{Authenticator: fakeAuth{}, ConfirmPrior: true, HideCredential: true, Consumer: true}, &Authorize{}, Admit{})
		if out.Status != tt.status || out.Code != tt.code {
			t.Fatalf("cred %q: outcome %+v", tt.cred, out)
		}
		if tt.status == 0 {
			if f.Consumer != [3]string{} || len(f.Upstream) != 0 || f.WasCleared("x-user-id") {
				t.Fatalf("cred %q: re-admitted: consumer %v upstream %v cleared %v", tt.cred, f.Consumer, f.Upstream, f.Cleared)
			}
			if tt.cred != "" && !f.WasCleared("x-cred") {
				t.Fatalf("cred %q: the credential was not hidden", tt.cred)
			}
		}
	}
}

func TestAuthorizeChecksTheLastIdentityWithItsChallenge(t *testing.T) {
	for _, scope := range []bool{false, true} {
		f := exchange.NewFake("GET", "/", map[string][]string{"X-Cred": {"alice"}})
		out := run(t, f, true, &Authenticate{Authenticator: fakeAuth{}, ScopeChallenge: scope},
			&Authorize{Policy: identity.Policy{RequiredScopes: []string{"admin"}}}, Admit{})
		want := ""
		if scope {
			want = ChallengeScope
		}
		if out.Status != 403 || out.Refused == nil || out.Refused.Subject != "alice" || f.ExitHeaders["WWW-Authenticate"] != want || f.Identity != nil {
			t.Fatalf("scope challenge %v: outcome %+v, headers %v, recorded %v", scope, out, f.ExitHeaders, f.Identity)
		}
	}
}

func TestAdmitFailsClosedWhenTheAssertionCannotBeSigned(t *testing.T) {
	f := exchange.NewFake("GET", "/", map[string][]string{"X-Cred": {"alice"}})
	out := run(t, f, true, &Authenticate{Authenticator: fakeAuth{}, Assert: failingAsserter{}}, &Authorize{}, Admit{})
	if out.Status != 500 || out.Code != pipeline.CodeEdgeError || f.Identity != nil || len(f.Upstream) != 0 {
		t.Fatalf("outcome %+v, recorded %v, upstream %v", out, f.Identity, f.Upstream)
	}
}

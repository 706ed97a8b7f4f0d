package cmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/outcome"
	"github.com/edgeguard/edgeguard/pkg/identity"
)

func TestTokenVerifyVerdicts(t *testing.T) {
	k := newKit(t)
	iss := k.realm.Issuer
	now := time.Now()
	tok := func(over map[string]any) string { return k.realm.Token(t, "u1", over) }
	valid := tok(nil)
	file := []string{"--jwks", k.jwksPath}
	url := []string{"--jwks", k.realm.JWKSURL()}

	tests := []struct {
		name   string
		token  string
		args   []string // after "token verify --issuer ISS"
		code   int
		reason string
	}{
		{name: "valid, keys from a file", token: valid, args: file, code: 0},
		{name: "valid, keys from a URL", token: valid, args: url, code: 0},
		{name: "valid, keys by OIDC discovery", token: valid, code: 0},
		{name: "valid ES256 from the file", token: k.mint(t, "ES256", map[string]any{"kid": "ec-1"}, k.claims("u1")), args: file, code: 0},
		{name: "expired", token: tok(map[string]any{"exp": now.Add(-time.Hour).Unix()}), args: file, code: 1, reason: "token_expired"},
		{name: "expired within the default leeway", token: tok(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), args: file, code: 0},
		{name: "expired within the leeway but --leeway 0", token: tok(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), args: append([]string{"--leeway", "0"}, file...), code: 1, reason: "token_expired"},
		{name: "not yet valid", token: tok(map[string]any{"nbf": now.Add(time.Hour).Unix()}), args: file, code: 1, reason: "token_not_yet_valid"},
		{name: "no exp", token: tok(map[string]any{"exp": nil}), args: file, code: 1, reason: "claim_missing"},
		{name: "wrong audience", token: tok(map[string]any{"aud": "other-api"}), args: file, code: 1, reason: "audience_mismatch"},
		{name: "--audience other rejects jan-api", token: valid, args: append([]string{"--audience", "other-api"}, file...), code: 1, reason: "audience_mismatch"},
		{name: "--audience any-of", token: tok(map[string]any{"aud": "other-api"}), args: append([]string{"--audience", "x", "--audience", "other-api"}, file...), code: 0},
		{name: "--azp not allowed", token: valid, args: append([]string{"--azp", "jan-web,guest-login"}, file...), code: 1, reason: "azp_not_allowed"},
		{name: "--azp allowed", token: valid, args: append([]string{"--azp", "jan-web,jan-cli"}, file...), code: 0},
		{name: "ID token", token: tok(map[string]any{"typ": "ID"}), args: file, code: 1, reason: "token_type_invalid"},
		{name: "refresh token", token: tok(map[string]any{"typ": "Refresh"}), args: file, code: 1, reason: "token_type_invalid"},
		{name: "other issuer", token: tok(map[string]any{"iss": "https://evil.example/realms/jan"}), args: file, code: 1, reason: "issuer_mismatch"},
		{name: "tampered signature", token: tamperSig(t, valid), args: url, code: 1, reason: "signature_invalid"},
		{name: "unknown kid", token: k.mint(t, "RS256", map[string]any{"kid": "gone"}, k.claims("u1")), args: url, code: 1, reason: "unknown_kid"},
		{name: "HS256 keyed with the RSA public key", token: k.hs256WithPublicKey(t, "kid-1", k.claims("u1")), args: file, code: 1, reason: "alg_not_allowed"},
		{name: "--alg restricting", token: valid, args: append([]string{"--alg", "ES256"}, file...), code: 1, reason: "alg_not_allowed"},
		{name: "garbage", token: "garbage", args: file, code: 1, reason: "token_malformed"},
		{name: "larger than the edge's 8 KiB", token: tok(map[string]any{"pad": strings.Repeat("x", 9000)}), args: file, code: 1, reason: "token_too_large"},
		{name: "larger than 1 MiB", token: strings.Repeat("a", 1<<20+1), args: file, code: 1, reason: "token_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"token", "verify", "--issuer", iss}, tt.args...)
			r := run(t, tt.token+"\n", append(args, "-")...)
			noLeak(t, r, tokenSecrets(tt.token)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", r.code, tt.code, r.stdout, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr: %q", r.stderr)
			}
			m := verdict(t, r)
			if tt.code != 0 {
				if m["reason"] != tt.reason || m["valid"] != false || m["identity"] != nil {
					t.Errorf("got %s, want reason %q", r.stdout, tt.reason)
				}
				return
			}
			if m["valid"] != true || m["reason"] != nil {
				t.Errorf("got %s", r.stdout)
			}
		})
	}
}

func TestTokenVerifyPrintsTheIdentity(t *testing.T) {
	k := newKit(t)
	tok := k.realm.Token(t, "0b9d1c2e", map[string]any{
		"realm_access":    map[string]any{"roles": []string{"user", "admin"}},
		"resource_access": map[string]any{"llm-api": map[string]any{"roles": []string{"models:write"}}},
	})
	r := run(t, tok, "token", "verify", "--issuer", k.realm.Issuer, "--jwks", k.jwksPath, "-")
	noLeak(t, r, tokenSecrets(tok)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	var out struct {
		Valid    bool               `json:"valid"`
		Identity *identity.Identity `json:"identity"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	id := out.Identity
	if !out.Valid || id == nil {
		t.Fatalf("got %s", r.stdout)
	}
	if id.Subject != "0b9d1c2e" || id.Username != "user-0b9d1c2e" || id.Email != "0b9d1c2e@example.com" ||
		id.Issuer != k.realm.Issuer || id.ClientID != "jan-cli" || id.AuthMethod != identity.MethodJWT ||
		!id.HasRole("admin") || !id.HasScope("profile") || id.Guest ||
		len(id.ClientRoles["llm-api"]) != 1 || id.ExpiresAt.Before(time.Now()) {
		t.Errorf("identity %+v from %s", id, r.stdout)
	}
}

func TestTokenVerifyIdPDownIsIdPUnavailableExit1(t *testing.T) {
	k := newKit(t)
	tok := k.realm.Token(t, "u1", nil)
	k.realm.SetDown(true)
	for _, args := range [][]string{{"--jwks", k.realm.JWKSURL()}, nil} {
		start := time.Now()
		r := run(t, tok, append(append([]string{"token", "verify", "--issuer", k.realm.Issuer, "--timeout", "300ms"}, args...), "-")...)
		noLeak(t, r, tokenSecrets(tok)...)
		if r.code != outcome.Invalid || verdict(t, r)["reason"] != "idp_unavailable" {
			t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %s with --timeout 300ms", d)
		}
		if !strings.Contains(r.stderr, "jwks refresh failed") {
			t.Errorf("the fetch failure is not logged: %q", r.stderr)
		}
	}

	// A token the claims already reject needs no keys: answered at once.
	r := run(t, k.realm.Token(t, "u1", map[string]any{"aud": "x"}), "token", "verify", "--issuer", k.realm.Issuer, "--timeout", "5s", "-")
	if r.code != outcome.Invalid || verdict(t, r)["reason"] != "audience_mismatch" {
		t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestTokenVerifyWaitsForTheIdP(t *testing.T) {
	k := newKit(t)
	tok := k.realm.Token(t, "u1", nil)
	k.realm.SetDown(true)
	go func() {
		time.Sleep(300 * time.Millisecond)
		k.realm.SetDown(false)
	}()
	r := run(t, tok, "token", "verify", "--issuer", k.realm.Issuer, "--jwks", k.realm.JWKSURL(), "--timeout", "8s", "-")
	if r.code != 0 {
		t.Fatalf("exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestTokenVerifyUsageErrorsExit2(t *testing.T) {
	k := newKit(t)
	tok := k.realm.Token(t, "u1", nil)
	iss := k.realm.Issuer
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no --issuer", []string{"--jwks", k.jwksPath}, "--issuer URL is required"},
		{"issuer not a URL", []string{"--issuer", "jan", "--jwks", k.jwksPath}, "not an absolute http(s) URL"},
		{"jwks URL with a query", []string{"--issuer", iss, "--jwks", k.realm.JWKSURL() + "?x=1"}, "jwks_url"},
		{"missing jwks file", []string{"--issuer", iss, "--jwks", "/nonexistent/jwks.json"}, "no such file"},
		{"leeway above 5m", []string{"--issuer", iss, "--jwks", k.jwksPath, "--leeway", "10m"}, "leeway"},
		{"negative leeway", []string{"--issuer", iss, "--jwks", k.jwksPath, "--leeway", "-1s"}, "leeway"},
		{"leeway not a duration", []string{"--issuer", iss, "--jwks", k.jwksPath, "--leeway", "soon"}, "invalid argument"},
		{"zero timeout", []string{"--issuer", iss, "--timeout", "0s"}, "--timeout"},
		{"alg HS256", []string{"--issuer", iss, "--jwks", k.jwksPath, "--alg", "HS256"}, "not allowed"},
		{"empty audience", []string{"--issuer", iss, "--jwks", k.jwksPath, "--audience", ""}, "audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tok, append(append([]string{"token", "verify"}, tt.args...), "-")...)
			noLeak(t, r, tokenSecrets(tok)...)
			if r.code != outcome.Usage || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q, want %q", r.stderr, tt.want)
			}
		})
	}
	r := run(t, "", "token", "verify", "--issuer", iss, "--jwks", k.jwksPath, "-")
	if r.code != outcome.Usage || !strings.Contains(r.stderr, "no token given") {
		t.Errorf("empty stdin: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestTokenVerifyLeewayBoundaryWithAnInjectedClock(t *testing.T) {
	k := newKit(t)
	exp := time.Now().Add(time.Minute).Truncate(time.Second)
	tok := k.realm.Token(t, "u1", map[string]any{"exp": exp.Unix()})
	for _, tt := range []struct {
		after time.Duration
		args  []string
		code  int
	}{
		{29 * time.Second, nil, 0},
		{31 * time.Second, nil, 1},
		{31 * time.Second, []string{"--leeway", "1m"}, 0},
		{time.Second, []string{"--leeway", "0"}, 1},
	} {
		var out, errb strings.Builder
		env := Env{Stdin: strings.NewReader(tok), Stdout: &out, Stderr: &errb, Now: func() time.Time { return exp.Add(tt.after) }}
		args := append([]string{"token", "verify", "--issuer", k.realm.Issuer, "--jwks", k.jwksPath}, tt.args...)
		if code := env.Run(t.Context(), append(args, "-")); code != tt.code {
			t.Errorf("exp+%s %v: exit %d, want %d (%s%s)", tt.after, tt.args, code, tt.code, out.String(), errb.String())
		}
	}
}

package cmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/cli/internal/credstore"
	"github.com/edgeguard/edgeguard/pkg/apikey"
)

func TestDoctorShowsWhereThingsAreWithSecretsRedacted(t *testing.T) {
	u, kc, _ := loggedIn(t)
	s := u.store()
	k, _ := apikey.Generate("live")
	u.vars["EDGEGUARD_API_KEY"] = k.Secret()

	r := u.run("doctor")
	if r.code != 0 {
		t.Fatalf("doctor: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"server", kc.URL() + " (from last login)",
		"credentials file", s.Path(kc.URL()) + " (0600",
		"data key", "file fallback: " + s.KeyPath(kc.URL()) + " (0600",
		"keyring mode", "file",
		"logged in as", "alice",
		"access token", "[redacted], expires",
		"refresh token", "[redacted], session until",
		"api key", "[redacted] from EDGEGUARD_API_KEY, kid " + k.KID(),
		"API-key routes use", "the API key from EDGEGUARD_API_KEY",
		"keys commands use", "the stored login (JWT)",
		"problems", "none",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor lacks %q:\n%s", want, r.stdout)
		}
	}
	noTokens(t, r, append(kc.secrets(), k.Secret()))

	j := u.run("doctor", "--json")
	var rep map[string]any
	if j.code != 0 || json.Unmarshal([]byte(j.stdout), &rep) != nil || strings.Count(j.stdout, "\n") != 1 {
		t.Fatalf("doctor --json: exit %d %q", j.code, j.stdout)
	}
	if st := rep["store"].(map[string]any); st["key_store"] != "file" || st["keyring_available"] != false {
		t.Errorf("doctor --json store: %v", st)
	}
	noTokens(t, j, append(kc.secrets(), k.Secret()))

	// A malformed key is a problem (exit 1), never echoed.
	r = u.run("doctor", "--api-key", "sk_live_notAKey-0123456789abcdef")
	if r.code != 1 || !strings.Contains(r.stdout, "not a well-formed sk_ key") || strings.Contains(r.stdout+r.stderr, "notAKey") {
		t.Errorf("malformed --api-key: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestDoctorWithAKeyringAndRotation(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	kc := newFakeKeycloak(t, clock)
	u := newUser(t, clock)
	u.ring = &credstore.MemoryKeyring{}
	u.vars["EDGEGUARD_KEYRING"] = "auto"
	if r := u.run("login", "--server", kc.URL()); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := u.run("doctor", "--json")
	var rep struct {
		Store struct {
			KeyStore string `json:"key_store"`
			KeyID    string `json:"key_id"`
			KeyFile  struct{ Exists bool }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Store.KeyStore != "keyring" || rep.Store.KeyFile.Exists {
		t.Fatalf("doctor with a keyring: %v %q", err, r.stdout)
	}
	if !strings.Contains(u.run("doctor").stdout, "OS keyring, service edgeguard-edgectl") {
		t.Error("doctor table does not name the keyring item")
	}
	before := rep.Store.KeyID
	r = u.run("doctor", "--rotate-key")
	if r.code != 0 || !strings.Contains(r.stdout, "key rotation") || !strings.Contains(r.stdout, before+" -> ") {
		t.Fatalf("doctor --rotate-key: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	_ = json.Unmarshal([]byte(u.run("doctor", "--json").stdout), &rep)
	if rep.Store.KeyID == before {
		t.Error("the key id did not change")
	}
	if w := u.run("whoami"); w.code != 0 || !strings.Contains(w.stdout, "alice") {
		t.Errorf("whoami after rotation: %d %q", w.code, w.stderr)
	}
	noTokens(t, r, kc.secrets())
}

func TestDoctorWithoutLogin(t *testing.T) {
	u := newUser(t, &fakeClock{now: time.Now()})
	r := u.run("doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "server") || !strings.Contains(r.stdout, "none") {
		t.Fatalf("doctor without a server: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = u.run("doctor", "--server", "https://edge.example.com")
	if r.code != 0 || !strings.Contains(r.stdout, "not logged in") || !strings.Contains(r.stdout, "none yet") {
		t.Fatalf("doctor not logged in: exit %d %q", r.code, r.stdout)
	}
	if r := u.run("doctor", "--rotate-key", "--server", "https://edge.example.com"); r.code != 1 || !strings.Contains(r.stderr, "no stored credentials") {
		t.Errorf("rotate without credentials: exit %d %q", r.code, r.stderr)
	}
}

// Package kctest is an in-process fake of the Keycloak endpoints llm-api
// calls (tests only): the token endpoint (client credentials for the llm-api
// service account; password and refresh grants for the guest-login client),
// the revocation endpoint, and the admin API's users, their realm role
// mappings and the user search by attribute — answering the way Keycloak 26
// does, with failure injection per operation.
//
// Error answers carry the marker LeakMarker in their bodies, so tests can
// check that nothing Keycloak says is echoed to llm-api's clients.
package kctest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Client ids and secrets of the fake realm "jan".
const (
	Realm             = "jan"
	ServiceClient     = "llm-api"
	ServiceSecret     = "kctest-llm-api-secret-0123456789"
	GuestClient       = "guest-login"
	GuestClientSecret = "kctest-guest-login-secret-0123456789"
	LeakMarker        = "KEYCLOAK-INTERNAL-DETAIL"
)

// Operations that can be made to fail.
const (
	OpServiceLogin = "service-login"
	OpCreate       = "create"
	OpRoles        = "role-mappings"
	OpUnmapRoles   = "unmap-roles"
	OpDelete       = "delete"
	OpList         = "list"
	OpPassword     = "password-grant"
	OpRefresh      = "refresh"
	OpRevoke       = "revoke"
)

// User is a user of the fake realm.
type User struct {
	ID         string
	Username   string
	Enabled    bool
	Groups     []string
	Attributes map[string][]string
	Password   string
	Created    time.Time
	RealmRoles []string // direct mappings
}

// Fake is the fake Keycloak.
type Fake struct {
	URL string

	mu       sync.Mutex
	users    map[string]*User
	fail     map[string]int    // op -> status to answer (once per call while set)
	sessions map[string]string // refresh token -> user id
	revoked  map[string]bool
	calls    map[string]int
	saToken  string
	issued   []string // access tokens
	now      func() time.Time
}

// New starts a fake Keycloak; it stops with the test.
func New(t testing.TB) *Fake {
	f := &Fake{users: map[string]*User{}, fail: map[string]int{}, sessions: map[string]string{},
		revoked: map[string]bool{}, calls: map[string]int{}, now: time.Now}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// SetNow sets the clock that stamps createdTimestamp.
func (f *Fake) SetNow(now func() time.Time) { f.mu.Lock(); f.now = now; f.mu.Unlock() }

// Fail makes op answer status until Fail(op, 0).
func (f *Fake) Fail(op string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.fail, op)
		return
	}
	f.fail[op] = status
}

// Calls counts the calls of op.
func (f *Fake) Calls(op string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[op] }

// Users returns copies of the realm's users.
func (f *Fake) Users() []User {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]User, 0, len(f.users))
	for _, u := range f.users {
		out = append(out, *u)
	}
	return out
}

// AddUser puts a user into the realm (e.g. an old guest for the cleanup).
func (f *Fake) AddUser(u User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := u
	f.users[u.ID] = &c
}

// Secrets lists every password and token the fake handed out or received,
// for log checks.
func (f *Fake) Secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, u := range f.users {
		if u.Password != "" {
			out = append(out, u.Password)
		}
	}
	for tok := range f.sessions {
		out = append(out, tok)
	}
	out = append(out, f.issued...)
	if f.saToken != "" {
		out = append(out, f.saToken)
	}
	return append(out, ServiceSecret, GuestClientSecret)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// token looks like a JWT (three base64url-ish parts).
func token(kind string) string { return "eyJ" + kind + "." + randHex(24) + "." + randHex(16) }

func writeErr(w http.ResponseWriter, status int, oauth string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": oauth, "error_description": LeakMarker + " " + oauth})
}

// failing reports (and answers) an injected failure of op.
func (f *Fake) failing(w http.ResponseWriter, op string) bool {
	f.calls[op]++
	if st := f.fail[op]; st != 0 {
		writeErr(w, st, "injected")
		return true
	}
	return false
}

func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	realm := "/realms/" + Realm + "/protocol/openid-connect/"
	switch {
	case r.URL.Path == realm+"token" && r.Method == http.MethodPost:
		f.tokenEndpoint(w, r)
	case r.URL.Path == realm+"revoke" && r.Method == http.MethodPost:
		f.revokeEndpoint(w, r)
	case strings.HasPrefix(r.URL.Path, "/admin/realms/"+Realm+"/users"):
		if r.Header.Get("Authorization") != "Bearer "+f.saToken || f.saToken == "" {
			writeErr(w, http.StatusUnauthorized, "HTTP 401 Unauthorized")
			return
		}
		f.admin(w, r, strings.TrimPrefix(r.URL.Path, "/admin/realms/"+Realm+"/users"))
	default:
		writeErr(w, http.StatusNotFound, "not found")
	}
}

func clientAuth(r *http.Request) (id, secret string) {
	if id, sec, ok := r.BasicAuth(); ok {
		return id, sec
	}
	return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
}

func (f *Fake) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, sec := clientAuth(r)
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		if f.failing(w, OpServiceLogin) {
			return
		}
		if id != ServiceClient || sec != ServiceSecret {
			writeErr(w, http.StatusUnauthorized, "unauthorized_client")
			return
		}
		f.saToken = token("sa")
		writeJSON(w, map[string]any{"access_token": f.saToken, "expires_in": 300, "token_type": "Bearer"})
	case "password":
		if f.failing(w, OpPassword) {
			return
		}
		if id != GuestClient || sec != GuestClientSecret {
			writeErr(w, http.StatusUnauthorized, "unauthorized_client")
			return
		}
		for _, u := range f.users {
			if u.Username == r.PostForm.Get("username") && u.Password == r.PostForm.Get("password") && u.Password != "" {
				f.issue(w, u.ID, r.PostForm.Get("scope"))
				return
			}
		}
		writeErr(w, http.StatusUnauthorized, "invalid_grant")
	case "refresh_token":
		if f.failing(w, OpRefresh) {
			return
		}
		if id != GuestClient || sec != GuestClientSecret {
			writeErr(w, http.StatusUnauthorized, "unauthorized_client")
			return
		}
		rt := r.PostForm.Get("refresh_token")
		uid, ok := f.sessions[rt]
		if !ok || f.revoked[rt] {
			writeErr(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		f.revoked[rt] = true // rotation: a refresh token works once
		f.issue(w, uid, "")
	default:
		writeErr(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

func (f *Fake) issue(w http.ResponseWriter, uid, scope string) {
	rt, at := token("refresh"), token("access")
	f.sessions[rt] = uid
	f.issued = append(f.issued, at)
	out := map[string]any{"access_token": at, "refresh_token": rt, "expires_in": 300,
		"refresh_expires_in": 1800, "token_type": "Bearer", "session_state": randHex(8), "scope": "profile", "not-before-policy": 0}
	if strings.Contains(scope, "openid") {
		out["id_token"] = token("id")
	}
	writeJSON(w, out)
}

func (f *Fake) revokeEndpoint(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if f.failing(w, OpRevoke) {
		return
	}
	if id, sec := clientAuth(r); id != GuestClient || sec != GuestClientSecret {
		writeErr(w, http.StatusUnauthorized, "unauthorized_client")
		return
	}
	if tok := r.PostForm.Get("token"); f.sessions[tok] != "" {
		// the client's session ends: every refresh token of that user dies
		uid := f.sessions[tok]
		for t, u := range f.sessions {
			if u == uid {
				f.revoked[t] = true
			}
		}
	}
	w.WriteHeader(http.StatusOK) // RFC 7009: unknown tokens too
}

// Revoked reports whether a refresh token was revoked or used.
func (f *Fake) Revoked(tok string) bool { f.mu.Lock(); defer f.mu.Unlock(); return f.revoked[tok] }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

type credential struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type userRep struct {
	ID               string              `json:"id,omitempty"`
	Username         string              `json:"username"`
	Enabled          bool                `json:"enabled"`
	CreatedTimestamp int64               `json:"createdTimestamp,omitempty"`
	Groups           []string            `json:"groups,omitempty"`
	Attributes       map[string][]string `json:"attributes,omitempty"`
	Credentials      []credential        `json:"credentials,omitempty"`
}

func (f *Fake) admin(w http.ResponseWriter, r *http.Request, rest string) {
	switch {
	case rest == "" && r.Method == http.MethodPost:
		if f.failing(w, OpCreate) {
			return
		}
		var rep userRep
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rep); err != nil || rep.Username == "" {
			writeErr(w, http.StatusBadRequest, "invalid user")
			return
		}
		for _, u := range f.users {
			if u.Username == rep.Username {
				writeErr(w, http.StatusConflict, "User exists with same username")
				return
			}
		}
		u := &User{ID: uuid(), Username: rep.Username, Enabled: rep.Enabled, Groups: rep.Groups, Attributes: rep.Attributes,
			Created: f.now(), RealmRoles: []string{"default-roles-" + Realm}}
		for _, c := range rep.Credentials {
			if c.Type == "password" {
				if len(c.Value) < 12 {
					writeErr(w, http.StatusBadRequest, "invalidPasswordMinLengthMessage")
					return
				}
				u.Password = c.Value
			}
		}
		f.users[u.ID] = u
		w.Header().Set("Location", f.URL+"/admin/realms/"+Realm+"/users/"+u.ID)
		w.WriteHeader(http.StatusCreated)
	case rest == "" && r.Method == http.MethodGet:
		if f.failing(w, OpList) {
			return
		}
		f.list(w, r)
	default:
		id, sub, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
		u, ok := f.users[id]
		switch {
		case sub == "" && r.Method == http.MethodDelete:
			if f.failing(w, OpDelete) {
				return
			}
			if !ok {
				writeErr(w, http.StatusNotFound, "User not found")
				return
			}
			delete(f.users, id)
			w.WriteHeader(http.StatusNoContent)
		case sub == "role-mappings/realm" && r.Method == http.MethodGet:
			if f.failing(w, OpRoles) {
				return
			}
			if !ok {
				writeErr(w, http.StatusNotFound, "User not found")
				return
			}
			out := []map[string]any{}
			for _, name := range u.RealmRoles {
				out = append(out, map[string]any{"id": "role-" + name, "name": name, "composite": strings.HasPrefix(name, "default-roles-")})
			}
			writeJSON(w, out)
		case sub == "role-mappings/realm" && r.Method == http.MethodDelete:
			if f.failing(w, OpUnmapRoles) {
				return
			}
			if !ok {
				writeErr(w, http.StatusNotFound, "User not found")
				return
			}
			var roles []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&roles); err != nil {
				writeErr(w, http.StatusBadRequest, "bad roles")
				return
			}
			for _, rr := range roles {
				if rr.ID != "role-"+rr.Name {
					writeErr(w, http.StatusNotFound, "Role not found")
					return
				}
				u.RealmRoles = slices.DeleteFunc(u.RealmRoles, func(n string) bool { return n == rr.Name })
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeErr(w, http.StatusNotFound, "not found")
		}
	}
}

// list answers GET /users?q=attr:value&first=&max=&briefRepresentation=,
// ordered by username like Keycloak.
func (f *Fake) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	first, _ := strconv.Atoi(q.Get("first"))
	max, err := strconv.Atoi(q.Get("max"))
	if err != nil {
		max = 100
	}
	var match []*User
	attr, val, _ := strings.Cut(q.Get("q"), ":")
	for _, u := range f.users {
		if attr == "" || slices.Contains(u.Attributes[attr], val) {
			match = append(match, u)
		}
	}
	sort.Slice(match, func(i, j int) bool { return match[i].Username < match[j].Username })
	out := []userRep{}
	for i := first; i < len(match) && len(out) < max; i++ {
		u := match[i]
		rep := userRep{ID: u.ID, Username: u.Username, Enabled: u.Enabled, CreatedTimestamp: u.Created.UnixMilli()}
		if q.Get("briefRepresentation") != "true" {
			rep.Attributes = u.Attributes
		}
		out = append(out, rep)
	}
	writeJSON(w, out)
}

func uuid() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

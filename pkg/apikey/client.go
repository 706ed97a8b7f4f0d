package apikey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/edgeguard/edgeguard/pkg/identity"
)

// maxResponseBytes bounds what is read of a validator answer.
const maxResponseBytes = 64 << 10

// Bounds of a valid answer's fields: the identity goes into upstream headers
// and an edge-signed assertion.
const (
	maxFieldLen = 256
	maxRoles    = 64
)

// errInternalAuth: llm-api refused the internal token (401
// internal_auth_failed). A misconfiguration, never the client's fault.
var errInternalAuth = errors.New("validator refused the internal token (internal_auth_failed)")

// errContract: an answer that breaks docs/contracts.md.
var errContract = errors.New("validator answer breaks the contract")

// call makes one validator call (bounded by Timeout, ended by Close) and
// returns the identity of a valid key, or the rejection, or a failure.
func (v *Validator) call(k Key, reqID string, now time.Time) (*identity.Identity, Reason, error) {
	ctx, cancel := context.WithTimeout(v.ctx, v.cfg.Timeout)
	defer cancel()
	body := make([]byte, 0, len(`{"key":""}`)+int(k.n))
	body = append(append(append(body, `{"key":"`...), k.Secret()...), `"}`...) // base62 and '_': no escaping
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.url, bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("build request: %w", err)
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{"application/json"}
	req.Header["X-Internal-Token"] = []string{v.currentToken()}
	if reqID != "" {
		req.Header["X-Request-ID"] = []string{reqID}
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read answer (status %d): %w", resp.StatusCode, err)
	}
	if len(data) > maxResponseBytes {
		return nil, "", fmt.Errorf("%w: answer larger than %d bytes", errContract, maxResponseBytes)
	}
	return decodeAnswer(resp.StatusCode, data, k.KID(), now)
}

// validAnswer is the 200 body of docs/contracts.md.
type validAnswer struct {
	Subject   string     `json:"subject"`
	Username  string     `json:"username"`
	Roles     []string   `json:"roles"`
	KeyID     string     `json:"key_id"`
	ExpiresAt *time.Time `json:"expires_at"`
	Guest     bool       `json:"guest"`
}

type errorAnswer struct {
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

// decodeAnswer turns a validator answer for the key with id kid into an
// identity, a rejection or a failure (wrapping errContract or
// errInternalAuth, or naming the status). It never trusts the answer beyond
// the contract: the key id must be the key's, and every field is bounded.
func decodeAnswer(status int, body []byte, kid string, now time.Time) (*identity.Identity, Reason, error) {
	switch status {
	case http.StatusOK:
		var a validAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, "", fmt.Errorf("%w: 200 body does not decode", errContract)
		}
		if err := a.check(kid); err != nil {
			return nil, "", err
		}
		id := &identity.Identity{
			Subject:    a.Subject,
			Username:   a.Username,
			RealmRoles: a.Roles,
			Guest:      a.Guest,
			AuthMethod: identity.MethodAPIKey,
			APIKeyID:   a.KeyID,
		}
		if a.ExpiresAt != nil {
			if !a.ExpiresAt.After(now) {
				return nil, ReasonExpired, nil // clocks disagree; the key is over either way
			}
			id.ExpiresAt = a.ExpiresAt.UTC()
		}
		return id, "", nil
	case http.StatusBadRequest:
		return nil, ReasonMalformed, nil
	case http.StatusUnauthorized:
		var a errorAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, "", fmt.Errorf("%w: 401 body does not decode", errContract)
		}
		switch r := Reason(a.Error.Code); r {
		case ReasonUnknown, ReasonRevoked, ReasonExpired, ReasonOwnerDisabled:
			return nil, r, nil
		case "internal_auth_failed":
			return nil, "", errInternalAuth
		}
		return nil, "", fmt.Errorf("%w: 401 with an unknown code", errContract)
	}
	return nil, "", fmt.Errorf("validator answered status %d", status)
}

func (a *validAnswer) check(kid string) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errContract, what) }
	switch {
	case a.KeyID != kid:
		return bad("key_id is not the key's id")
	case !cleanField(a.Subject, false):
		return bad("subject missing or invalid")
	case !cleanField(a.Username, true):
		return bad("username invalid")
	case len(a.Roles) > maxRoles:
		return bad("too many roles")
	}
	for _, r := range a.Roles {
		if !cleanField(r, false) {
			return bad("role invalid")
		}
	}
	return nil
}

// cleanField: valid UTF-8, at most maxFieldLen bytes, no control characters.
func cleanField(s string, emptyOK bool) bool {
	if s == "" {
		return emptyOK
	}
	if len(s) > maxFieldLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// Package secretgen writes the secret files a compose or Kubernetes
// deployment of edgeguard mounts (compose/gen-secrets.sh, k8s/README.md):
// random passwords, tokens and peppers, the edge identity key pair
// (pkg/edgeid), and the files derived from them (the Redis ACL file with the
// password's SHA-256, llm-api's database URL). It is for dev and first
// installs; production keeps these in its secret store.
//
// Generate is idempotent: existing files are kept (a second run never
// rotates a secret), missing ones are created, and derived files are built
// from the existing values so that the set stays consistent.
package secretgen

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgeguard/edgeguard/pkg/edgeid"
)

// File names under the output directory (compose's secrets: and the keys of
// the Kubernetes Secrets use the same names).
const (
	RedisPassword           = "redis_password"
	RedisACL                = "redis_users.acl"
	InternalToken           = "internal_token"
	EdgeIdentityKey         = "edge_identity.pem"
	EdgeIdentityJWKS        = "edge_identity.jwks.json"
	APIKeyPepper            = "api_key_pepper"
	PostgresPassword        = "postgres_password"
	LLMAPIDBPassword        = "llm_api_db_password"
	LLMAPIDatabaseURL       = "llm_api_database_url"
	KeycloakDBPassword      = "keycloak_db_password"
	KeycloakAdminPassword   = "keycloak_admin_password"
	LLMAPIClientSecret      = "keycloak_llm_api_client_secret"
	GuestLoginClientSecret  = "keycloak_guest_login_client_secret"
	MediaURLSigningKey      = "media_url_signing_key"
	DefaultDatabaseHostPort = "postgres:5432"
)

// Random are the files holding 32 random bytes as 64 hex characters (long
// enough for every minimum in config/README.md, no character that needs
// quoting in a URL or a shell).
var Random = []string{
	RedisPassword, InternalToken, APIKeyPepper, PostgresPassword, LLMAPIDBPassword,
	KeycloakDBPassword, KeycloakAdminPassword, LLMAPIClientSecret, GuestLoginClientSecret, MediaURLSigningKey,
}

// All lists every file Generate writes.
func All() []string {
	return append(append([]string{}, Random...), RedisACL, LLMAPIDatabaseURL, EdgeIdentityKey, EdgeIdentityJWKS)
}

// Options of Generate.
type Options struct {
	// DatabaseHostPort is PostgreSQL's host:port in llm-api's database URL
	// (default postgres:5432, the compose service).
	DatabaseHostPort string
}

// Generate creates the missing secret files in dir (created 0700). Files are
// 0644 inside that 0700 directory: compose bind-mounts each file into
// containers whose users (kong 1001, keycloak 1000, redis and postgres 999,
// services 65532) are not the host user that owns it.
func Generate(dir string, opt Options) error {
	if opt.DatabaseHostPort == "" {
		opt.DatabaseHostPort = DefaultDatabaseHostPort
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	values := map[string]string{}
	for _, name := range Random {
		v, err := ensure(dir, name, randomHex)
		if err != nil {
			return err
		}
		values[name] = v
	}
	if _, err := ensure(dir, RedisACL, func() (string, error) { return RedisACLLine(values[RedisPassword]), nil }); err != nil {
		return err
	}
	if _, err := ensure(dir, LLMAPIDatabaseURL, func() (string, error) {
		return fmt.Sprintf("postgres://llmapi:%s@%s/llmapi?sslmode=disable", values[LLMAPIDBPassword], opt.DatabaseHostPort), nil
	}); err != nil {
		return err
	}
	return ensureEdgeKeys(dir)
}

// RedisACLLine is the ACL file that gives Redis's default user the password
// whose SHA-256 it holds (the file never contains the password itself).
func RedisACLLine(password string) string {
	sum := sha256.Sum256([]byte(password))
	return "user default on #" + hex.EncodeToString(sum[:]) + " ~* &* +@all"
}

func ensure(dir, name string, make func() (string, error)) (string, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s is empty: delete it to regenerate", path)
		}
		return v, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	v, err := make()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		return "", err
	}
	return v, os.Chmod(path, 0o644)
}

func ensureEdgeKeys(dir string) error {
	key, jwks := filepath.Join(dir, EdgeIdentityKey), filepath.Join(dir, EdgeIdentityJWKS)
	_, kerr := os.Stat(key)
	_, jerr := os.Stat(jwks)
	switch {
	case kerr == nil && jerr == nil:
		return nil
	case kerr == nil || jerr == nil:
		return fmt.Errorf("only one of %s and %s exists: delete both to generate a new edge identity key", EdgeIdentityKey, EdgeIdentityJWKS)
	}
	if err := edgeid.WriteKeyFiles(key, jwks); err != nil {
		return err
	}
	return os.Chmod(key, 0o644)
}

func randomHex() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

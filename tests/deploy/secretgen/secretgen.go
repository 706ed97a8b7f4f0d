// Package secretgen writes the secret files a compose or Kubernetes
// deployment of edgeguard mounts (compose/gen-secrets.sh, k8s/README.md)
// and `make dev` uses: random passwords, tokens and peppers, the edge
// identity key pair (pkg/edgeid), the files derived from them (the Redis ACL
// file with the password's SHA-256, llm-api's database URL), and the mTLS
// certificates of the hop Kong → services (a development CA, the edge's
// client certificate, one server certificate per service: pkg/devpki,
// ECDSA P-256, short lifetimes). It is for dev and first installs;
// production keeps these in its secret store and gets its certificates from
// cert-manager, a mesh or SPIRE.
//
// Generate is idempotent: existing files are kept (a second run never
// rotates a secret), missing ones are created, and derived files are built
// from the existing values so that the set stays consistent. Certificates
// are the exception: one that expires within RenewBefore is renewed (a new
// CA renews every certificate it signed), so the short-lived set stays
// usable across `make dev` runs.
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
	"time"

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

// All lists every file Generate writes (kong.yml only with
// Options.KongYML).
func All() []string {
	return append(append(append([]string{}, Random...), RedisACL, LLMAPIDatabaseURL, EdgeIdentityKey, EdgeIdentityJWKS), TLSFiles()...)
}

// KongYML is the kong.yml Generate renders with the generated CA
// (Options.KongYML).
const KongYML = "kong.yml"

// Options of Generate.
type Options struct {
	// DatabaseHostPort is PostgreSQL's host:port in llm-api's database URL
	// (default postgres:5432, the compose service).
	DatabaseHostPort string
	// KongYML, when set, is the repository's kong/kong.yml: Generate writes
	// DIR/kong.yml with its services CA replaced by the generated one
	// (RenderKongYML), what compose mounts as Kong's declarative config.
	KongYML []byte
	// Now is the clock of the certificates (tests; default time.Now).
	Now func() time.Time
	// Renewed, when set, receives the certificate files written by this run.
	Renewed *[]string
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
	if err := ensureEdgeKeys(dir); err != nil {
		return err
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	renewed, err := ensureTLS(dir, now())
	if err != nil {
		return err
	}
	if opt.Renewed != nil {
		*opt.Renewed = renewed
	}
	if opt.KongYML != nil {
		ca, err := os.ReadFile(filepath.Join(dir, MTLSCA))
		if err != nil {
			return err
		}
		out, err := RenderKongYML(opt.KongYML, ca)
		if err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, KongYML), out, 0o644); err != nil {
			return err
		}
	}
	return nil
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

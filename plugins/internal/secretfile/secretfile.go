// Package secretfile reads the secrets a plugin's configuration names by
// file (never the secret itself in kong.yml: Kong's Admin API would show
// it): once (ReadSecretFile) or as a value that follows the file across
// rotations (SecretFileValue).
package secretfile

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/envconf"
	"github.com/edgeguard/edgeguard/pkg/secrets"
	"github.com/edgeguard/edgeguard/plugins/internal/pluginlog"
)

// Minimum lengths of the secrets plugins read (the same as the services').
const (
	// MinInternalToken is internal_token_file's (llm-api's INTERNAL_TOKEN).
	MinInternalToken = 32
	// MinRedisPassword is the redis password files' (llm-api's REDIS_PASSWORD).
	MinRedisPassword = 16
)

// ReadSecretFile reads a secret from a file named in a plugin's config
// (never the secret itself in kong.yml: Kong's Admin API would show it).
// Trailing newlines are dropped; an empty path returns "". A value shorter
// than minLen bytes, or a placeholder from the templates and docs
// (envconf.IsPlaceholder: "changeme", "${VAR}", one repeated character…), is
// refused: a plugin is always strict (its instance then answers 500
// edge_misconfigured). Errors name the option and the path, never the
// content.
func ReadSecretFile(option, path string, minLen int) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read %s", option, path)
	}
	s := strings.TrimRight(string(b), "\r\n")
	switch {
	case s == "":
		return "", fmt.Errorf("%s: %s is empty", option, path)
	case envconf.IsPlaceholder([]byte(s)):
		return "", fmt.Errorf("%s: %s holds a placeholder or default value; generate a random secret", option, path)
	case len(s) < minLen:
		return "", fmt.Errorf("%s: %s holds %d bytes, at least %d required", option, path, len(s), minLen)
	}
	return s, nil
}

// SecretCheckInterval is how often a secret file read by SecretFileValue is
// read again.
var SecretCheckInterval = 10 * time.Second

var secretFiles = struct {
	sync.Mutex
	m map[string]*secrets.Value
}{m: map[string]*secrets.Value{}}

// SecretFileValue is ReadSecretFile as a process-level value that follows
// the file: one per (option, path, minLen), read again every
// SecretCheckInterval by a background loop, so a rotated file (a new file
// renamed or symlinked over it) applies without restarting the plugin
// server. A new content that ReadSecretFile refuses keeps the current value
// (logged once). An error at first read is returned and not remembered (a
// fixed file works on the next instance). path must not be empty.
func SecretFileValue(option, path string, minLen int) (*secrets.Value, error) {
	key := fmt.Sprintf("%s\x00%s\x00%d", option, path, minLen)
	secretFiles.Lock()
	defer secretFiles.Unlock()
	if v := secretFiles.m[key]; v != nil {
		return v, nil
	}
	v, err := secrets.NewValue(context.Background(), option, false, func(context.Context) ([]byte, string, error) {
		s, err := ReadSecretFile(option, path, minLen)
		return []byte(s), "file", err
	})
	if err != nil {
		return nil, err
	}
	if v.Get() == nil {
		return nil, fmt.Errorf("%s: required", option)
	}
	secretFiles.m[key] = v
	go secrets.Watch(context.Background(), SecretCheckInterval, pluginlog.New("edge-secrets").With().Str("option", option).Logger(), v)
	return v, nil
}

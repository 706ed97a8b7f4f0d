package pluginrt

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/edgeguard/edgeguard/pkg/secrets"
)

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
	go secrets.Watch(context.Background(), SecretCheckInterval, Logger("edge-secrets").With().Str("option", option).Logger(), v)
	return v, nil
}

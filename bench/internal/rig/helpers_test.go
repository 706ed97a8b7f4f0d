package rig

import (
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
)

var (
	otherOnce sync.Once
	other     *rsa.PrivateKey
)

// otherKey is an RSA key the rig never published (generated once).
func otherKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	otherOnce.Do(func() {
		var err error
		if other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return other
}

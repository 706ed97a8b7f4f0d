package keystest_test

import (
	"testing"

	"github.com/edgeguard/edgeguard/services/llm-api/internal/keystest"
)

func TestMemStoreContract(t *testing.T) {
	keystest.StoreContract(t, func(*testing.T) keystest.Store { return keystest.NewMemStore() })
}

package kong

import (
	"os"
	"testing"
)

// TestMain stops what the tests share (a Redis started locally, the capture
// binaries) after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	shared.run()
	os.Exit(code)
}

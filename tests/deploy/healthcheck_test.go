package deploy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestHealthcheckProbe builds docker/healthcheck (standard library only, as
// docker/Dockerfile.service does: GOWORK=off, the file on its own) and runs
// it against a 200, a 503 and a redirect.
func TestHealthcheckProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	src, err := filepath.Abs(filepath.Join(root, "docker/healthcheck/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "healthcheck")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Dir = filepath.Dir(src)
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build docker/healthcheck/main.go: %v\n%s", err, out)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
		case "/moved":
			http.Redirect(w, r, "/readyz", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	for _, tt := range []struct {
		path string
		code int
	}{{"/readyz", 0}, {"/down", 1}, {"/moved", 1}} {
		err := exec.Command(bin, srv.URL+tt.path).Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("healthcheck %s: exit %d, want %d", tt.path, code, tt.code)
		}
	}
}

// Command healthcheck is the container healthcheck of edgeguard's service
// images, which have no shell: it GETs one URL (the service's internal
// /readyz) and exits 0 on a 2xx answer within two seconds, 1 otherwise.
// It is built with the standard library only (docker/Dockerfile.service
// compiles this file on its own); it is not a monitoring tool.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck http://127.0.0.1:8081/readyz")
		os.Exit(2)
	}
	os.Exit(check(os.Args[1], 2*time.Second))
}

func check(url string, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 2
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}).Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintln(os.Stderr, "healthcheck:", resp.Status)
		return 1
	}
	return 0
}

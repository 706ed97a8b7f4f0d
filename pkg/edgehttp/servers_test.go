package edgehttp_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeguard/edgeguard/pkg/edgehttp"
)

func TestServersListenServeAndShutDown(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
	s := edgehttp.Servers{Public: &http.Server{Addr: "127.0.0.1:0", Handler: ok}, Internal: &http.Server{Addr: "127.0.0.1:0", Handler: ok}}
	pub, in, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pub, in) }()
	for _, ln := range []net.Listener{pub, in} {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil || resp.StatusCode != 204 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestListenNamesTheVariable(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := edgehttp.Servers{Public: &http.Server{Addr: "127.0.0.1:0"}, Internal: &http.Server{Addr: busy.Addr().String()}}
	if _, _, err := s.Listen(); err == nil || !strings.HasPrefix(err.Error(), "INTERNAL_LISTEN_ADDR:") {
		t.Fatalf("%v", err)
	}
	s = edgehttp.Servers{Public: &http.Server{Addr: busy.Addr().String()}, Internal: &http.Server{Addr: "127.0.0.1:0"}}
	if _, _, err := s.Listen(); err == nil || !strings.HasPrefix(err.Error(), "LISTEN_ADDR:") {
		t.Fatalf("%v", err)
	}
}

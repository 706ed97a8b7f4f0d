package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo serves one line back per connection until closed.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = c.Write([]byte(line))
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

func TestStopRefusesAndStartRestoresOnTheSameAddress(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr := p.Addr()
	if err := roundTrip(addr); err != nil {
		t.Fatalf("up: %v", err)
	}
	p.Stop()
	if err := roundTrip(addr); err == nil {
		t.Fatal("down: the round trip worked")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.Addr() != addr {
		t.Fatalf("address changed: %s → %s", addr, p.Addr())
	}
	if err := roundTrip(addr); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

func TestStopResetsOpenConnections(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // the proxy has dialled the target
	p.Stop()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("an open connection survived Stop")
	}
}

func TestNoTargetClosesConnections(t *testing.T) {
	p, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := roundTrip(p.Addr()); err == nil {
		t.Fatal("a connection without a target was served")
	}
	p.SetTarget(echo(t))
	if err := roundTrip(p.Addr()); err != nil {
		t.Fatal(err)
	}
}

func TestTapKeepsWhatClientsSentWhileTapping(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := roundTrip(p.Addr()); err != nil {
		t.Fatal(err)
	}
	stop := p.Tap(3)
	if err := roundTrip(p.Addr()); err != nil {
		t.Fatal(err)
	}
	got := stop()
	if len(got) != 1 || string(got[0]) != "pin" {
		t.Fatalf("tapped %q, want one connection's first 3 bytes %q", got, "pin")
	}
	if err := roundTrip(p.Addr()); err != nil {
		t.Fatal(err)
	}
	if again := p.Tap(10)(); len(again) != 0 {
		t.Errorf("a new tap holds %q before any traffic", again)
	}
}

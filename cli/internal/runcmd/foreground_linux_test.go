package runcmd

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"unsafe"
)

// TestMain: with RUNCMD_TEST_FG set, the test binary is the process whose
// foreground check is asked (TestForegroundOnATerminal).
func TestMain(m *testing.M) {
	switch os.Getenv("RUNCMD_TEST_FG") {
	case "leader":
		// The session leader of a new terminal: its process group is the
		// terminal's foreground group.
		if !(&runner{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}).foreground() {
			os.Exit(3)
		}
		// A process in another group on the same terminal is not.
		c := exec.Command(os.Args[0])
		c.Env = append(os.Environ(), "RUNCMD_TEST_FG=background")
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Run(); err != nil {
			os.Exit(4)
		}
		os.Exit(0)
	case "background":
		if (&runner{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}).foreground() {
			os.Exit(5)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func ioctl(fd uintptr, req uint, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(req), uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// TestForegroundOnATerminal: on a real terminal (a pseudo-terminal this
// test opens), the foreground process group is foreground — Ctrl-C already
// reaches the child, so SIGINT/SIGQUIT are not sent twice — and a process of
// another group on that terminal is not (it forwards them).
func TestForegroundOnATerminal(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	var unlock int32
	if err := ioctl(master.Fd(), syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal(err)
	}
	var n uint32
	if err := ioctl(master.Fd(), syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pts.Close()
	c := exec.Command(os.Args[0])
	c.Env = append(os.Environ(), "RUNCMD_TEST_FG=leader")
	c.Stdin, c.Stdout, c.Stderr = pts, pts, pts
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	go func() { // drain the terminal
		b := make([]byte, 4096)
		for {
			if _, err := master.Read(b); err != nil {
				return
			}
		}
	}()
	if err := c.Run(); err != nil {
		t.Fatalf("foreground checks on a terminal: %v (3: the foreground group was not seen as such; 4/5: a background group was)", err)
	}
}

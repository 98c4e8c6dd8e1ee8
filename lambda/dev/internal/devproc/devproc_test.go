package devproc_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"

	"github.com/p2/buddy/lambda/dev/internal/devproc"
)

func TestAChildIsFoundAndKilledWithItsGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("lists children through /proc")
	}
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = devproc.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kids, err := devproc.Children(os.Getpid())
	if err != nil || !slices.Contains(kids, cmd.Process.Pid) {
		t.Fatalf("Children = %v, %v; want it to hold %d", kids, err, cmd.Process.Pid)
	}
	if err := devproc.KillGroup(cmd.Process); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := <-done; !errors.As(err, &exit) {
		t.Errorf("sleep ended with %v, want killed", err)
	}
	if err := devproc.KillGroup(cmd.Process); err != nil {
		t.Errorf("killing a group that is gone: %v", err)
	}
}

func TestListensOnTellsWhoseSocketItIs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads sockets through /proc")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mine := l.Addr().(*net.TCPAddr).Port
	free, err := devproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		port int
		want bool
	}{
		{"a port this process listens on", mine, true},
		{"a free port", free, false},
	}
	for _, tt := range tests {
		if got, err := devproc.ListensOn(os.Getpid(), tt.port); err != nil || got != tt.want {
			t.Errorf("%s: ListensOn = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

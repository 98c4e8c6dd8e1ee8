//go:build !unix

package devproc

import (
	"os"
	"syscall"
)

// SysProcAttr: no process groups here; KillGroup kills the process itself.
func SysProcAttr() *syscall.SysProcAttr { return nil }

// KillGroup kills p.
func KillGroup(p *os.Process) error { return p.Kill() }

// KillGroupOf kills the process pid.
func KillGroupOf(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// ListensOn cannot tell here whose socket answers on a port; callers then
// trust any answer, as they must without /proc.
func ListensOn(pid, port int) (bool, error) { return true, nil }

// Children needs /proc.
func Children(pid int) ([]int, error) { return nil, ErrUnsupported }

//go:build unix && !linux

package devproc

import (
	"os"
	"syscall"
)

// SysProcAttr puts a child in its own process group so KillGroup kills all
// of it. Only Linux has a parent-death signal: elsewhere a test binary
// killed before it stops its children leaves them running.
func SysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// KillGroup kills the process group led by p; a group that is already
// gone is fine.
func KillGroup(p *os.Process) error { return KillGroupOf(p.Pid) }

// KillGroupOf kills the process group led by pid.
func KillGroupOf(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// ListensOn cannot tell here whose socket answers on a port; callers then
// trust any answer, as they must without /proc.
func ListensOn(pid, port int) (bool, error) { return true, nil }

// Children needs /proc.
func Children(pid int) ([]int, error) { return nil, ErrUnsupported }

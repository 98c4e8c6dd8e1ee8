//go:build unix && !linux

package dynamodblocal

import (
	"os"
	"syscall"
)

// sysProcAttr puts the JVM in its own process group so Stop kills all of
// it. Only Linux has a parent-death signal: elsewhere a test binary killed
// before Stop leaves the JVM running.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the whole group; a group that is already gone is fine.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// listensOn cannot tell here whose socket answers on a port; Start then
// trusts any answer, as it must without /proc.
func listensOn(pid, port int) (bool, error) { return true, nil }

package dynalite

import (
	"os"
	"syscall"
)

// sysProcAttr puts dynalite in its own process group (so Stop kills node
// and anything it spawned) and asks the kernel to SIGKILL it when the
// parent dies, so a crashed or killed test binary leaves no server behind.
// Pdeathsig follows the forking OS thread, which the Go runtime keeps alive
// unless a goroutine locked to it exits; Start locks none.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the whole group; a group that is already gone is fine.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

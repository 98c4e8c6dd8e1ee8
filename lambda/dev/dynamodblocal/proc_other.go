//go:build !unix

package dynamodblocal

import (
	"os"
	"syscall"
)

// sysProcAttr: no process groups here; Stop kills the process itself.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) error { return p.Kill() }

// listensOn cannot tell here whose socket answers on a port; Start then
// trusts any answer, as it must without /proc.
func listensOn(pid, port int) (bool, error) { return true, nil }

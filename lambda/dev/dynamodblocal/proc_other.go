//go:build !unix

package dynalite

import (
	"os"
	"syscall"
)

// sysProcAttr: no process groups here; Stop kills the process itself.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) error { return p.Kill() }

// Package devproc holds what the local tooling needs to run an emulator as
// a child process and leave nothing behind: a process group of its own
// (and, on Linux, death with its parent), killing that group, telling
// whether a port is held by a given process, finding a process's children,
// and picking a free loopback port.
package devproc

import (
	"errors"
	"fmt"
	"net"
)

// ErrUnsupported: this operating system gives no way to answer.
var ErrUnsupported = errors.New("devproc: not supported on this operating system")

// FreePort returns a loopback TCP port that was free a moment ago. Another
// process can take it before the caller binds it: callers that hand it to
// a child retry when the child reports the address in use.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devproc: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

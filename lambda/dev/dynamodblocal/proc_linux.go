package dynamodblocal

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the JVM in its own process group (so Stop kills it and
// anything it spawned) and asks the kernel to SIGKILL it when the parent
// dies, so a crashed or killed test binary leaves no JVM behind.
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

// listensOn reports whether process pid holds the listening TCP socket on
// port: the sockets' inodes from /proc/net/tcp{,6} (the JVM listens on
// IPv6 "*"), matched against the process's open files.
func listensOn(pid, port int) (bool, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listeningInodes(f, port, inodes); err != nil {
			return false, err
		}
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, fmt.Errorf("dynamodblocal: %w", err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(fdDir + "/" + fd.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok && inodes[strings.TrimSuffix(inode, "]")] {
			return true, nil
		}
	}
	return false, nil
}

// listeningInodes adds the inodes of the sockets listening on port listed
// in file, whose lines read
// "sl local_address(hex ip:hex port) rem_address st(0A: LISTEN) ... inode ...".
func listeningInodes(file string, port int, inodes map[string]bool) error {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil // no IPv6 here
	}
	if err != nil {
		return fmt.Errorf("dynamodblocal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
			inodes[fields[9]] = true
		}
	}
	return sc.Err()
}

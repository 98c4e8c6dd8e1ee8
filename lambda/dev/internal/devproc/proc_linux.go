package devproc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// SysProcAttr puts a child in its own process group (so KillGroup kills it
// and anything it spawned into that group) and asks the kernel to SIGKILL
// it when the parent dies, so a crashed or killed test binary leaves no
// emulator behind. Pdeathsig follows the forking OS thread, which the Go
// runtime keeps alive unless a goroutine locked to it exits; the callers
// lock none.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

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

// ListensOn reports whether process pid holds the listening TCP socket on
// port: the sockets' inodes from /proc/net/tcp{,6} (a JVM's sockets are
// IPv6 ones, its 127.0.0.1 too: ::ffff:127.0.0.1), matched against the
// process's open files.
func ListensOn(pid, port int) (bool, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listeningInodes(f, port, inodes); err != nil {
			return false, err
		}
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false, fmt.Errorf("devproc: %w", err)
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
		return fmt.Errorf("devproc: %w", err)
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

// Children lists the live processes whose parent is pid, from the parent
// field of every /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may
// hold spaces and parentheses, so the fields are read after its last ')').
func Children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("devproc: %w", err)
	}
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
			kids = append(kids, child)
		}
	}
	return kids, nil
}

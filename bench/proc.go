package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// proc is a child process the harness owns: started once, killed and waited
// for exactly once.
type proc struct {
	cmd     *exec.Cmd
	started time.Time // just before fork/exec: the cold start's zero
	out     *tail
	done    chan struct{}
	waitErr error
}

func startProc(argv []string, dir string, env []string) (*proc, error) {
	p := &proc{out: &tail{max: 32 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	// One writer for both streams: os/exec then copies them from a single
	// pipe in one goroutine, in order.
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// kill ends the process and waits for it; safe to call more than once.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// peakRSS is the process's high-water resident set (VmHWM) in bytes: the
// most memory it held at any moment of its life, which is what Lambda's
// "Max Memory Used" reports against the function's memory size.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

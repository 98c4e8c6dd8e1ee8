package bench

import (
	"bytes"
	"fmt"
	"io"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// wallProfiler attributes wall-clock time, not CPU time, to the handler
// functions of the in-process dev server. The ttft overhead is mostly
// waiting (on DynamoDB Local, on sockets), which a CPU profile does not see, so
// while a message is between its send and its first delta the profiler
// samples every goroutine's stack and counts, for each goroutine running
// handler code, the innermost Buddy function it is in. It stops the world
// for each sample, so it only runs with -pprof, never for the figures.
type wallProfiler struct {
	interval time.Duration
	active   atomic.Bool
	stop     chan struct{}
	done     chan struct{}

	mu     sync.Mutex
	ticks  int            // samples taken while active
	counts map[string]int // innermost Buddy frame (← its caller) → samples
}

const buddyPrefix = "github.com/p2/buddy/lambda/"

func startWallProfiler(interval time.Duration) *wallProfiler {
	p := &wallProfiler{interval: interval, stop: make(chan struct{}), done: make(chan struct{}), counts: map[string]int{}}
	go p.run()
	return p
}

func (p *wallProfiler) run() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	var buf bytes.Buffer
	prof := pprof.Lookup("goroutine")
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if !p.active.Load() {
			continue
		}
		// The text form (debug=1) is used rather than
		// runtime.GoroutineProfile, whose records stop at 32 frames: the
		// AWS SDK's middleware alone is deeper than that, which would cut
		// the handler frames off every store call.
		buf.Reset()
		if err := prof.WriteTo(&buf, 1); err != nil {
			continue
		}
		keys := handlerFrames(buf.String())
		p.mu.Lock()
		p.ticks++
		if len(keys) == 0 {
			p.counts["(no handler running: gateway, invoker, dispatch, client)"]++
		}
		for k := range keys {
			p.counts[k]++
		}
		p.mu.Unlock()
	}
}

// handlerFrames reads a debug=1 goroutine profile and names, for each
// stack serving an invocation, where it is: its innermost Buddy frame and
// that frame's Buddy caller. Stacks outside a handler (socket loops, the
// relay's sender, idle workers) are left out.
func handlerFrames(text string) map[string]bool {
	keys := map[string]bool{}
	var buddy []string
	inHandler := false
	flush := func() {
		if inHandler && len(buddy) > 0 {
			k := buddy[0]
			if len(buddy) > 1 {
				k += " ← " + buddy[1]
			}
			keys[k] = true
		}
		buddy, inHandler = buddy[:0], false
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#\t") {
			flush()
			continue
		}
		// "#\t0x4a1b2c\tpkg.Func+0x1c\t/path/file.go:12"
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			continue
		}
		fn, _, _ := strings.Cut(f[2], "+0x")
		if name, ok := strings.CutPrefix(fn, buddyPrefix); ok {
			buddy = append(buddy, name)
			if strings.HasPrefix(name, "wshandler.") {
				inHandler = true
			}
		}
	}
	flush()
	return keys
}

// close stops sampling.
func (p *wallProfiler) close() {
	close(p.stop)
	<-p.done
}

// report writes each location's share of the samples and, from the mean
// time to first delta (ms), its time per message. Shares rather than
// tick counts carry the time: a tick that comes while a sample is still
// being taken is dropped.
func (p *wallProfiler) report(w io.Writer, messages int, meanMS float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	type row struct {
		k string
		n int
	}
	var rows []row
	for k, n := range p.counts {
		rows = append(rows, row{k, n})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].n > rows[j].n })
	fmt.Fprintf(w, "wall-clock samples (every %s at most) between send and first delta: %d over %d messages, mean %.2f ms each\n", p.interval, p.ticks, messages, meanMS)
	fmt.Fprintf(w, "%7s %9s  %s\n", "share", "ms/msg", "innermost Buddy function ← caller (goroutines in a handler)")
	for _, r := range rows {
		share := float64(r.n) / float64(max(p.ticks, 1))
		fmt.Fprintf(w, "%6.1f%% %9.2f  %s\n", share*100, share*meanMS, r.k)
	}
}

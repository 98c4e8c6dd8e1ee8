package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// TimeSynth runs `make synth` twice in root and returns the duration of the
// second run: the first warms the Go build cache, the npm install stamp and
// the CDK CLI, as a developer's machine is warm. The output goes to logPath.
// errSkip reports a Makefile without a synth target.
func TimeSynth(ctx context.Context, root, logPath string) (time.Duration, error) {
	if err := exec.CommandContext(ctx, "make", "-C", root, "-n", "synth").Run(); err != nil {
		return 0, fmt.Errorf("%w: the Makefile has no working synth target yet (make -n synth: %v)", ErrSkip, err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return 0, err
	}
	log, err := os.Create(logPath)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	var last time.Duration
	for i := range 2 {
		fmt.Fprintf(log, "=== make synth, run %d\n", i+1)
		cmd := exec.CommandContext(ctx, "make", "-C", root, "--no-print-directory", "synth")
		cmd.Stdout, cmd.Stderr = log, log
		start := time.Now()
		err := cmd.Run()
		last = time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("make synth (run %d) failed after %s: %w; see %s", i+1, last.Round(time.Millisecond), err, logPath)
		}
	}
	return last, nil
}

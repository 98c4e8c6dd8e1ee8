//go:build unix

package versitygw

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes an exclusive flock on dir/.lock, waiting for whoever holds
// it; the kernel drops it if the holder dies.
func lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("versitygw: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

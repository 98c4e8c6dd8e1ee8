package devproc

import (
	"bytes"
	"io"
	"net"
	"sync"
)

// Tail is an emulator's output as a failure quotes it: the last max bytes
// written (it never grows for the life of a dev server), copied to also
// when set; Seen is closed once marker has been written (nil: never).
type Tail struct {
	mu     sync.Mutex
	max    int
	buf    bytes.Buffer
	marker []byte
	seen   chan struct{}
	also   io.Writer
}

// NewTail keeps the last max bytes, watches for marker, copies to also.
func NewTail(max int, marker []byte, also io.Writer) *Tail {
	return &Tail{max: max, marker: marker, seen: make(chan struct{}), also: also}
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	// Checked before trimming, and over the whole tail, so a marker
	// split across writes is still found.
	if t.marker != nil && bytes.Contains(t.buf.Bytes(), t.marker) {
		close(t.seen)
		t.marker = nil
	}
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	if t.also != nil {
		_, _ = t.also.Write(p)
	}
	return len(p), nil
}

// Seen is closed once the marker has been written.
func (t *Tail) Seen() <-chan struct{} { return t.seen }

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

// NonLoopbackAddrs is every address of this machine's interfaces that is
// up, except loopback and IPv6 link-local ones (those need a zone to
// dial): where an emulator bound to loopback must not answer.
func NonLoopbackAddrs() ([]net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				out = append(out, n.IP)
			}
		}
	}
	return out, nil
}

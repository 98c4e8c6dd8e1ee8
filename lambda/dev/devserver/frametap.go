package devserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// frameTap watches the raw bytes a client sends and notes the first data
// frame whose payload exceeds the frame limit. coder/websocket only bounds
// whole messages (SetReadLimit); API Gateway also closes a connection with
// 1009 when a single frame is larger than 32 KB, even inside a message that
// is small enough. The tap parses frame headers only and never changes the
// stream.
type frameTap struct {
	max int64

	hdr  [14]byte
	n    int   // header bytes collected
	need int   // header size once known (0: not yet)
	skip int64 // payload bytes of the current frame still to pass

	// messages counts data messages completed (a FIN data or continuation
	// frame); control frames do not count.
	messages int64
	// tooBigAt is the index of the first message holding an oversize
	// frame, -1 while none.
	tooBigAt atomic.Int64
}

func newFrameTap(max int64) *frameTap {
	t := &frameTap{max: max}
	t.tooBigAt.Store(-1)
	return t
}

// observe consumes bytes in stream order. It is called from the single
// goroutine that reads the connection.
func (t *frameTap) observe(p []byte) {
	for len(p) > 0 {
		if t.skip > 0 {
			k := min(int64(len(p)), t.skip)
			t.skip -= k
			p = p[k:]
			continue
		}
		t.hdr[t.n] = p[0]
		t.n++
		p = p[1:]
		if t.n == 2 {
			t.need = 2
			switch t.hdr[1] & 0x7f {
			case 126:
				t.need += 2
			case 127:
				t.need += 8
			}
			if t.hdr[1]&0x80 != 0 {
				t.need += 4 // masking key
			}
		}
		if t.n >= 2 && t.n == t.need {
			t.frameHeader()
		}
	}
}

func (t *frameTap) frameHeader() {
	fin := t.hdr[0]&0x80 != 0
	opcode := t.hdr[0] & 0x0f
	var size int64
	switch l := t.hdr[1] & 0x7f; l {
	case 126:
		size = int64(binary.BigEndian.Uint16(t.hdr[2:4]))
	case 127:
		size = int64(binary.BigEndian.Uint64(t.hdr[2:10]) & (1<<63 - 1))
	default:
		size = int64(l)
	}
	control := opcode >= 0x8
	if !control && size > t.max {
		t.tooBigAt.CompareAndSwap(-1, t.messages)
	}
	if !control && fin {
		t.messages++
	}
	t.skip = size
	t.n, t.need = 0, 0
}

// violates reports whether data message number msg (0-based, in read
// order) or an earlier one carried an oversize frame.
func (t *frameTap) violates(msg int64) bool {
	at := t.tooBigAt.Load()
	return at >= 0 && at <= msg
}

// tapConn feeds every byte read from the client through the tap.
type tapConn struct {
	net.Conn
	r   io.Reader
	tap *frameTap
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.tap.observe(p[:n])
	return n, err
}

// tapWriter makes coder/websocket read the hijacked connection through a
// frameTap: it reads from the net.Conn that Hijack returns.
type tapWriter struct {
	http.ResponseWriter
	tap *frameTap
}

func (w *tapWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("devserver: response writer cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the HTTP server buffered past the request belong to the
	// WebSocket stream: pass them through the tap first.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	tc := &tapConn{
		Conn: conn,
		r:    io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn),
		tap:  w.tap,
	}
	return tc, bufio.NewReadWriter(bufio.NewReader(tc), brw.Writer), nil
}

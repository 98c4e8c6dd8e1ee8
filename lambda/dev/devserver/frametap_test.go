package devserver

import (
	"encoding/binary"
	"testing"
)

// rawFrame builds a client frame header plus payload.
func rawFrame(fin bool, opcode byte, size int, masked bool) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	var mask byte
	if masked {
		mask = 0x80
	}
	out := []byte{b0}
	switch {
	case size < 126:
		out = append(out, mask|byte(size))
	case size <= 0xffff:
		out = append(out, mask|126)
		out = binary.BigEndian.AppendUint16(out, uint16(size))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, uint64(size))
	}
	if masked {
		out = append(out, 1, 2, 3, 4)
	}
	return append(out, make([]byte, size)...)
}

func TestFrameTap(t *testing.T) {
	const limit = 32 * 1024
	const (
		text, cont, ping = 0x1, 0x0, 0x9
	)
	cat := func(frames ...[]byte) []byte {
		var out []byte
		for _, f := range frames {
			out = append(out, f...)
		}
		return out
	}
	tests := []struct {
		name   string
		stream []byte
		want   int64 // index of the first message with an oversize frame, -1 none
	}{
		{"small text frame passes", rawFrame(true, text, 20, true), -1},
		{"frame of exactly 32 KB passes", rawFrame(true, text, limit, true), -1},
		{"frame one byte over 32 KB is caught", rawFrame(true, text, limit+1, true), 0},
		{"frame needing a 64-bit length is caught", rawFrame(true, text, 70000, true), 0},
		{"oversize continuation inside a message is caught",
			cat(rawFrame(false, text, 100, true), rawFrame(true, cont, limit+10, true)), 0},
		{"message of small frames larger than a frame passes",
			cat(rawFrame(false, text, limit, true), rawFrame(false, cont, limit, true), rawFrame(true, cont, limit, true)), -1},
		{"oversize frame in the second message points at it",
			cat(rawFrame(true, text, 10, true), rawFrame(true, text, limit+1, true)), 1},
		{"control frames do not count as messages",
			cat(rawFrame(true, ping, 4, true), rawFrame(true, text, 10, true), rawFrame(true, ping, 0, true), rawFrame(true, text, limit+1, true)), 1},
		{"unmasked frames are parsed too",
			cat(rawFrame(true, text, 5, false), rawFrame(true, text, limit+1, false)), 1},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 4096, len(tt.stream)} {
			tap := newFrameTap(limit)
			for p := tt.stream; len(p) > 0; {
				n := min(chunk, len(p))
				tap.observe(p[:n])
				p = p[n:]
			}
			if got := tap.tooBigAt.Load(); got != tt.want {
				t.Errorf("%s (read in chunks of %d): first oversize message = %d, want %d", tt.name, chunk, got, tt.want)
			}
		}
	}
}

func TestFrameTapViolates(t *testing.T) {
	tap := newFrameTap(10)
	tap.observe(rawFrame(true, 0x1, 5, true))
	tap.observe(rawFrame(true, 0x1, 50, true))
	for _, tt := range []struct {
		name string
		msg  int64
		want bool
	}{
		{"the valid message before it is delivered", 0, false},
		{"the oversize message is refused", 1, true},
		{"nothing after it is delivered", 2, true},
	} {
		if got := tap.violates(tt.msg); got != tt.want {
			t.Errorf("%s: violates(%d) = %v, want %v", tt.name, tt.msg, got, tt.want)
		}
	}
}

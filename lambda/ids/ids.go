// Package ids makes time-ordered unique ids (ULID layout: 48-bit millisecond
// time + 80 random bits, Crockford base32), so that DynamoDB sort keys order
// messages by creation time. Within one process ids are strictly increasing,
// which keeps a user message before the reply created right after it.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var (
	mu      sync.Mutex
	lastMS  uint64
	lastRnd [10]byte
)

// New returns a 26-character id greater than every id this process made before.
func New() string { return NewAt(time.Now()) }

// NewAt is New with an explicit clock, for tests.
func NewAt(t time.Time) string {
	ms := uint64(t.UnixMilli())
	mu.Lock()
	var rnd [10]byte
	if ms <= lastMS {
		// Same (or earlier) millisecond: increment the last random part so
		// order survives bursts and small clock steps back.
		ms = lastMS
		rnd = lastRnd
		for i := len(rnd) - 1; i >= 0; i-- {
			rnd[i]++
			if rnd[i] != 0 {
				break
			}
		}
	} else {
		_, _ = rand.Read(rnd[:])
	}
	lastMS, lastRnd = ms, rnd
	mu.Unlock()

	var b [16]byte
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], ms)
	copy(b[:6], tb[2:])
	copy(b[6:], rnd[:])
	return encode(b)
}

// encode writes 128 bits as 26 base32 characters, most significant first.
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Valid reports whether s has the shape of an id made here; handlers use it
// to reject junk before it reaches the store.
func Valid(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}

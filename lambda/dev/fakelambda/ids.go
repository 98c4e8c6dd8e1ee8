package fakelambda

import (
	"crypto/rand"
	"encoding/hex"
)

// NewRequestID makes a request id of the UUID shape Lambda uses; the dev
// server's in-process invocations use it too, so both look like Lambda's.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

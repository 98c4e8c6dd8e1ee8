package devserver

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"time"
)

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newGatewayID makes an id shaped like API Gateway's connection and
// request ids ("R1kmxc2VNjMCFIA="). The trailing "=" is kept on purpose:
// the SDK must escape it in the @connections path, as it must in AWS.
func newGatewayID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, 16)
	for _, c := range b {
		out = append(out, idAlphabet[int(c)%len(idAlphabet)])
	}
	return string(append(out, '='))
}

// newAPIID makes a 10-character API id like "dl7ptocha9".
func newAPIID() string {
	const lower = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [10]byte
	_, _ = rand.Read(b[:])
	for i, c := range b {
		b[i] = lower[int(c)%len(lower)]
	}
	return string(b[:])
}

// requestTime formats t as API Gateway's requestTime ("20/Jan/2024:11:55:00 +0000").
func requestTime(t time.Time) string { return t.UTC().Format("02/Jan/2006:15:04:05 -0700") }

// errIntegrationTimeout: API Gateway stopped waiting for the function.
var errIntegrationTimeout = errors.New("integration timed out")

// integrate invokes fn with ev and waits at most timeout, as API Gateway
// does with its integration timeout; the invocation itself carries on.
func integrate(iv *invoker, fn *function, ev any, timeout time.Duration) ([]byte, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-iv.start(fn, payload):
		return r.out, r.err
	case <-t.C:
		return nil, errIntegrationTimeout
	}
}

package store

import (
	"context"
	"time"
)

// PromptCounterKey lets the external tests read the prompt counter raw
// and prove that no prompt call reaches it.
const PromptCounterKey = promptCounterKey

// NoPause makes d retry at once: the tests of retries do not wait out the
// backoff.
func NoPause(d *Dynamo) {
	d.pause = func(context.Context, time.Duration) error { return nil }
}

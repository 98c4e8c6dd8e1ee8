// Package fakeclock is a hand-driven time source for tests: expiry, TTLs,
// rate limits and key ages are tested by moving time, not by waiting. It is
// safe for concurrent use, since the code under test reads it from its own
// goroutines.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a time source that stands still until the test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock that reads t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time; pass the method value where code takes a
// func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

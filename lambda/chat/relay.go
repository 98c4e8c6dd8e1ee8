package chat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/p2/buddy/lambda/wsapi"
)

// DefaultWindow is the coalescing window for delta frames.
//
// The rule: the first text of a reply is posted the moment it arrives (time
// to first token is what a user feels); after that, text that arrives within
// Window of the previous post is held and sent together, so a reply costs at
// most one @connections call per window instead of one per token. 100 ms is
// below what a reader perceives as stutter, and at typical Claude speeds
// (40-100 tokens/s) it cuts posts 4-10x. The last text is flushed without
// waiting when the reply ends.
const DefaultWindow = 100 * time.Millisecond

// relay turns a stream of text fragments into numbered delta frames. The
// model's stream goroutine calls Text; a single sender goroutine posts, so a
// slow post never blocks reading the upstream and frames leave in seq order.
// close reports what was relayed.
type relay struct {
	post   func(ctx context.Context, frame []byte) error
	frame  func(seq int, text string) wsapi.Frame
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	pending  strings.Builder
	produced strings.Builder // everything the model said, posted or not
	sent     strings.Builder // everything posted in deltas
	closed   bool
	err      error         // sticky: the first failed post (ErrGone ends the reply)
	wake     chan struct{} // text arrived
	closing  chan struct{} // the reply ended: flush now
	done     chan struct{}

	// Owned by the sender.
	seq       int
	firstPost time.Time
}

// relayed is what a relay did.
type relayed struct {
	sent      string    // the text posted in deltas
	produced  string    // the text the model said, posted or not
	deltas    int       // delta frames posted
	firstPost time.Time // zero when nothing was posted
	err       error     // the first failed post (ErrGone: the client left)
}

// newRelay starts the sender. Its posts carry ctx's values but not its
// cancellation: text already produced is paid for and belongs to the
// client, so it is posted even when the stream was cancelled. Each post is
// bounded by the post func itself (the reply's poster has a deadline).
func newRelay(ctx context.Context, post func(context.Context, []byte) error, frame func(int, string) wsapi.Frame, window time.Duration, now func() time.Time) *relay {
	r := &relay{
		post: post, frame: frame, window: window, now: now,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go r.run(context.WithoutCancel(ctx))
	return r
}

// Text queues a fragment. It returns the sticky post error, so the caller
// stops the upstream as soon as the client is gone.
func (r *relay) Text(s string) error {
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return err
	}
	r.pending.WriteString(s)
	r.produced.WriteString(s)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// close flushes what is pending, stops the sender and reports what was
// relayed. Text must not be called after close.
func (r *relay) close() relayed {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	close(r.closing)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return relayed{
		sent:      r.sent.String(),
		produced:  r.produced.String(),
		deltas:    r.seq,
		firstPost: r.firstPost,
		err:       r.err,
	}
}

func (r *relay) run(ctx context.Context) {
	defer close(r.done)
	var last time.Time
	for {
		select {
		case <-r.wake:
		case <-r.closing:
		}
		// Text that follows a recent post waits out the window, unless the
		// reply is ending.
		if !last.IsZero() {
			if wait := r.window - r.now().Sub(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-r.closing:
					t.Stop()
				}
			}
		}
		r.mu.Lock()
		text := r.pending.String()
		r.pending.Reset()
		closed, failed := r.closed, r.err != nil
		r.mu.Unlock()
		if text != "" && !failed {
			if err := r.send(ctx, text); err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
			}
			last = r.now()
		}
		if closed {
			return
		}
	}
}

// send posts text as one delta, or several when it exceeds what one frame
// may carry (a burst after a slow post).
func (r *relay) send(ctx context.Context, text string) error {
	for _, chunk := range wsapi.SplitText(text, wsapi.MaxDeltaTextBytes) {
		f := r.frame(r.seq, chunk)
		if err := r.post(ctx, wsapi.Encode(f)); err != nil {
			return err
		}
		if r.seq == 0 {
			r.firstPost = r.now()
		}
		r.seq++
		r.mu.Lock()
		r.sent.WriteString(chunk)
		r.mu.Unlock()
	}
	return nil
}

// isGone reports whether err means the client left.
func isGone(err error) bool { return errors.Is(err, wsapi.ErrGone) }

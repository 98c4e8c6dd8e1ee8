package chat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/wsapi"
)

// DefaultWindow is the coalescing window for delta frames.
//
// The rule: the first text of a reply is posted the moment it arrives (time
// to first token is what a user feels); after that, text that arrives within
// Window of the previous post is held and sent together, so a reply costs at
// most one @connections call per window and listener instead of one per
// token. 100 ms is below what a reader perceives as stutter, and at typical
// Claude speeds (40-100 tokens/s) it cuts posts 4-10x. The last text is
// flushed without waiting when the reply ends.
const DefaultWindow = 100 * time.Millisecond

// broadcast turns the model's text into numbered frames and sends them to
// every connection following the reply. Frames are cut once, when text is
// flushed, and kept: a listener that joins late (a resume, possibly on
// another connection) gets the same frames, with the same seq and text,
// from the one after its afterSeq on, then the live ones. No listener's
// failure stops the reply: one that is gone is dropped, and the reply runs
// on for the others, or for a resume to come.
//
// The model's goroutine calls Text; a sender goroutine flushes on the
// window; every post happens under postMu, so each listener's frames leave
// in seq order whoever delivers them.
type broadcast struct {
	post   func(ctx context.Context, connectionID string, frame []byte) error
	frame  func(l *listener, seq int, f store.Frame, text string) wsapi.Frame
	window time.Duration
	now    func() time.Time
	ctx    context.Context

	mu        sync.Mutex
	pending   []segment
	frames    []store.Frame
	texts     []string // each frame's text
	answer    strings.Builder
	thinking  strings.Builder
	listeners []*listener
	failures  []error // posts that failed other than with ErrGone
	firstPost time.Time

	postMu  sync.Mutex
	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}
}

// segment is text of one kind waiting to be flushed.
type segment struct {
	thinking bool
	text     string
}

// listener is a connection following the reply and the next frame it needs.
// A connection listens once: gone when a post to it failed, and forgotten
// once its place in the live record was given up (takeGone), after which
// a resume from it joins afresh.
type listener struct {
	connectionID string
	requestID    string
	next         int
	gone         bool
	forgotten    bool
}

// newBroadcast starts the sender. Its posts carry ctx's values but not its
// cancellation: text already produced is paid for and belongs to the
// client, so it is posted even when the model call was cancelled. Each post
// is bounded by the post func itself (the reply's poster has a deadline).
func newBroadcast(ctx context.Context, post func(context.Context, string, []byte) error, frame func(*listener, int, store.Frame, string) wsapi.Frame, window time.Duration, now func() time.Time) *broadcast {
	b := &broadcast{
		post: post, frame: frame, window: window, now: now,
		ctx:     context.WithoutCancel(ctx),
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go b.run()
	return b
}

// Text queues a fragment of the answer (or of the thinking).
func (b *broadcast) Text(thinking bool, s string) {
	if s == "" {
		return
	}
	b.mu.Lock()
	if n := len(b.pending); n > 0 && b.pending[n-1].thinking == thinking {
		b.pending[n-1].text += s
	} else {
		b.pending = append(b.pending, segment{thinking, s})
	}
	b.mu.Unlock()
	b.poke()
}

func (b *broadcast) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Follow adds the connection as a listener that wants the frames after
// afterSeq, unless it listens already (a connection counts once); the
// sender catches it up at once. A forgotten listener is a new one.
func (b *broadcast) Follow(connectionID, requestID string, afterSeq int) {
	b.mu.Lock()
	defer b.poke()
	defer b.mu.Unlock()
	for _, l := range b.listeners {
		if l.connectionID != connectionID {
			continue
		}
		if l.forgotten {
			*l = listener{connectionID: connectionID, requestID: requestID, next: afterSeq + 1}
		}
		return
	}
	b.listeners = append(b.listeners, &listener{connectionID: connectionID, requestID: requestID, next: afterSeq + 1})
}

// takeGone returns the connections found gone since the last call and
// forgets them.
func (b *broadcast) takeGone() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range b.listeners {
		if l.gone && !l.forgotten {
			l.forgotten = true
			out = append(out, l.connectionID)
		}
	}
	return out
}

// Live is how many listeners are still there.
func (b *broadcast) Live() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.listeners {
		if !l.gone {
			n++
		}
	}
	return n
}

// Snapshot is the text and frames flushed so far.
func (b *broadcast) Snapshot() (answer string, frames []store.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answer.String(), append([]store.Frame(nil), b.frames...)
}

func (b *broadcast) run() {
	defer close(b.done)
	var last time.Time
	for {
		select {
		case <-b.wake:
		case <-b.closing:
			return
		}
		// Text that follows a recent post waits out the window.
		if !last.IsZero() {
			if wait := b.window - b.now().Sub(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-b.closing:
					t.Stop()
					return
				}
			}
		}
		if b.Flush() {
			last = b.now()
		}
	}
}

// Flush cuts what is pending into frames and brings every listener up to
// date; it reports whether there was new text.
func (b *broadcast) Flush() bool {
	b.postMu.Lock()
	defer b.postMu.Unlock()
	b.mu.Lock()
	pending := b.pending
	b.pending = nil
	for _, seg := range pending {
		for _, chunk := range wsapi.SplitText(seg.text, wsapi.MaxDeltaTextBytes) {
			b.frames = append(b.frames, store.Frame{Bytes: len(chunk), Thinking: seg.thinking})
			b.texts = append(b.texts, chunk)
			if seg.thinking {
				b.thinking.WriteString(chunk)
			} else {
				b.answer.WriteString(chunk)
			}
		}
	}
	b.mu.Unlock()
	b.deliver()
	return len(pending) > 0
}

// deliver posts each live listener the frames it has not had. Called
// with postMu held.
func (b *broadcast) deliver() {
	b.mu.Lock()
	ls := append([]*listener(nil), b.listeners...)
	b.mu.Unlock()
	for _, l := range ls {
		for {
			b.mu.Lock()
			if l.gone || l.next >= len(b.frames) {
				b.mu.Unlock()
				break
			}
			seq := l.next
			f, text := b.frames[seq], b.texts[seq]
			b.mu.Unlock()
			err := b.post(b.ctx, l.connectionID, wsapi.Encode(b.frame(l, seq, f, text)))
			b.mu.Lock()
			if err != nil {
				b.drop(l, err)
			} else {
				l.next++
				if b.firstPost.IsZero() {
					b.firstPost = b.now()
				}
			}
			b.mu.Unlock()
		}
	}
}

// drop forgets a listener whose post failed. Called with mu held.
func (b *broadcast) drop(l *listener, err error) {
	l.gone = true
	if !errors.Is(err, wsapi.ErrGone) {
		b.failures = append(b.failures, err)
	}
}

// Close stops the sender after a last flush; the listeners still there
// then get their final frame from Finish.
func (b *broadcast) Close() {
	close(b.closing)
	<-b.done
	b.Flush()
}

// Finish posts each live listener the frame that ends the reply.
func (b *broadcast) Finish(final func(l *listener) wsapi.Frame) {
	b.postMu.Lock()
	defer b.postMu.Unlock()
	b.mu.Lock()
	ls := append([]*listener(nil), b.listeners...)
	b.mu.Unlock()
	for _, l := range ls {
		if l.gone {
			continue
		}
		if err := b.post(b.ctx, l.connectionID, wsapi.Encode(final(l))); err != nil {
			b.mu.Lock()
			b.drop(l, err)
			b.mu.Unlock()
		}
	}
}

// broadcasted is what a broadcast did.
type broadcasted struct {
	answer    string // the text of the answer frames
	thinking  string // the text of the thinking frames
	frames    []store.Frame
	firstPost time.Time // zero when nothing was posted
	failures  error     // posts that failed other than because the client left
}

func (b *broadcast) result() broadcasted {
	b.mu.Lock()
	defer b.mu.Unlock()
	return broadcasted{
		answer:    b.answer.String(),
		thinking:  b.thinking.String(),
		frames:    append([]store.Frame(nil), b.frames...),
		firstPost: b.firstPost,
		failures:  errors.Join(b.failures...),
	}
}

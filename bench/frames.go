package bench

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/p2/buddy/lambda/tokens"
	"github.com/p2/buddy/lambda/wsapi"
)

// ReplyStats is what a client saw of one reply.
type ReplyStats struct {
	Sent       time.Time // when the client sent sendMessage
	Start, End bool
	FirstDelta time.Time
	LastDelta  time.Time
	Deltas     int
	Frames     int // every frame of the reply: start, deltas, end, error
	MaxFrame   int
	MinGap     time.Duration // smallest interval between two delta frames
	Lost       int           // see Reply
	Error      string        // code and message of an error frame
	Code       string        // the error frame's code alone
	Output     int64         // outputTokens of the end frame
	Usage      *tokens.Usage // the end frame's usage

	// Seqs is how many deltas arrived in order from seq 0 (duplicates and
	// frames after a gap left out).
	Seqs int

	// ConversationID and MessageID are what the start frame named.
	ConversationID, MessageID string
}

// Reply follows the frames of one reply as a client sees them and counts
// what a client would lose: a seq gap is a missing frame, a seq at or below
// one already seen is a duplicate or out of order, and a reply without its
// start or end frame lost that frame too.
type Reply struct {
	mu   sync.Mutex
	s    ReplyStats
	text strings.Builder
	next int
	gaps []time.Duration // between consecutive deltas, in arrival order
	done chan struct{}   // closed at the end or error frame
	// onFirst, when set, runs when the first delta arrives.
	onFirst func()
}

// NewReply starts following a reply sent at sent.
func NewReply(sent time.Time) *Reply {
	return &Reply{s: ReplyStats{Sent: sent}, done: make(chan struct{})}
}

// Ended is closed when the end or error frame arrives.
func (r *Reply) Ended() <-chan struct{} { return r.done }

func (r *Reply) finish() {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
}

// Stats returns a copy of what was seen so far, with a missing start or
// end frame counted as lost.
func (r *Reply) Stats() ReplyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.Seqs = r.next
	if !s.Start {
		s.Lost++
	}
	if !s.End {
		s.Lost++
	}
	return s
}

// Gaps are the intervals between consecutive delta frames.
func (r *Reply) Gaps() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.gaps)
}

// Text is the concatenated delta texts.
func (r *Reply) Text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.text.String()
}

// Add takes one frame received at at.
func (r *Reply) Add(b []byte, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.s
	s.Frames++
	s.MaxFrame = max(s.MaxFrame, len(b))
	var f wsapi.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		s.Lost++ // a frame the client cannot read is as good as lost
		return
	}
	switch f.Type {
	case wsapi.TypeStart:
		s.Start, s.ConversationID, s.MessageID = true, f.ConversationID, f.MessageID
	case wsapi.TypeDelta:
		if f.Seq == nil {
			s.Lost++
			return
		}
		switch seq := *f.Seq; {
		case seq == r.next:
			r.next++
		case seq > r.next:
			s.Lost += seq - r.next
			r.next = seq + 1
		default:
			s.Lost++
		}
		if s.Deltas == 0 {
			s.FirstDelta = at
			if r.onFirst != nil {
				r.onFirst()
			}
		} else {
			gap := at.Sub(s.LastDelta)
			r.gaps = append(r.gaps, gap)
			if s.Deltas == 1 || gap < s.MinGap {
				s.MinGap = gap
			}
		}
		s.LastDelta = at
		s.Deltas++
		r.text.WriteString(f.Text)
	case wsapi.TypeEnd:
		s.End = true
		if f.Usage != nil {
			s.Output, s.Usage = f.Usage.OutputTokens, f.Usage
		}
		r.finish()
	case wsapi.TypeError:
		s.Error, s.Code = f.Code+": "+f.Message, f.Code
		r.finish()
	}
}

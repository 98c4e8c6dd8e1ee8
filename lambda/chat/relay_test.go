package chat

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/wsapi"
)

// recorder collects posted frames; gone makes posts fail from the n-th on.
type recorder struct {
	mu     sync.Mutex
	frames []wsapi.Frame
	sizes  []int
	posted chan struct{}
	goneAt int // 0: never
}

func newRecorder() *recorder { return &recorder{posted: make(chan struct{}, 1024)} }

func (r *recorder) post(_ context.Context, b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.goneAt > 0 && len(r.frames)+1 >= r.goneAt {
		return wsapi.ErrGone
	}
	var f wsapi.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	r.frames = append(r.frames, f)
	r.sizes = append(r.sizes, len(b))
	r.posted <- struct{}{}
	return nil
}

func deltaFrame(seq int, text string) wsapi.Frame {
	return wsapi.Frame{Type: wsapi.TypeDelta, RequestID: "r", Seq: &seq, Text: text}
}

func TestRelayFirstTextIsNotHeldButLaterTextIsCoalesced(t *testing.T) {
	rec := newRecorder()
	// A window far longer than the test: anything after the first post can
	// only leave when the reply ends.
	r := newRelay(t.Context(), rec.post, deltaFrame, time.Hour, time.Now)
	if err := r.Text("Hel"); err != nil {
		t.Fatal(err)
	}
	// Held back, the first text would wait out the hour-long window: go
	// test's -timeout reports that hang; the test sets no deadline of its
	// own that a busy machine could trip.
	<-rec.posted
	for _, s := range []string{"lo", ", ", "world"} {
		if err := r.Text(s); err != nil {
			t.Fatal(err)
		}
	}
	r.close()
	if len(rec.frames) != 2 {
		t.Fatalf("got %d posts, want 2 (first text, then one coalesced post): %+v", len(rec.frames), rec.frames)
	}
	if rec.frames[0].Text != "Hel" || rec.frames[1].Text != "lo, world" {
		t.Errorf("texts = %q, %q", rec.frames[0].Text, rec.frames[1].Text)
	}
	if *rec.frames[0].Seq != 0 || *rec.frames[1].Seq != 1 {
		t.Errorf("seqs = %d, %d", *rec.frames[0].Seq, *rec.frames[1].Seq)
	}
}

func TestRelayKeepsEveryByteInOrder(t *testing.T) {
	tests := []struct {
		name      string
		fragments []string
	}{
		{"many small tokens", strings.Fields(strings.Repeat("the quick brown fox jumps ", 200))},
		{"one burst bigger than a frame", []string{strings.Repeat("é\"<\x01", 20_000)}},
		{"multibyte runes", []string{"日本", "語の", "テキスト", "😀😀"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			r := newRelay(t.Context(), rec.post, deltaFrame, time.Millisecond, time.Now)
			var want strings.Builder
			for _, f := range tt.fragments {
				want.WriteString(f)
				if err := r.Text(f); err != nil {
					t.Fatal(err)
				}
			}
			out := r.close()
			var got strings.Builder
			for i, f := range rec.frames {
				if *f.Seq != i {
					t.Fatalf("frame %d has seq %d", i, *f.Seq)
				}
				if rec.sizes[i] > wsapi.MaxFrameBytes {
					t.Fatalf("frame %d is %d bytes, over the 32 KB frame limit", i, rec.sizes[i])
				}
				got.WriteString(f.Text)
			}
			if got.String() != want.String() {
				t.Errorf("concatenated deltas differ from the input (%d vs %d bytes)", got.Len(), want.Len())
			}
			if out.sent != want.String() || out.produced != want.String() || out.deltas != len(rec.frames) {
				t.Errorf("relayed sent/produced/deltas differ from the input and the posts")
			}
		})
	}
}

func TestRelayStopsAtGone(t *testing.T) {
	rec := newRecorder()
	rec.goneAt = 2
	r := newRelay(t.Context(), rec.post, deltaFrame, 0, time.Now)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = r.Text("token ")
		if i == 0 {
			<-rec.posted
		}
		time.Sleep(time.Millisecond) // let the sender try the second post
	}
	out := r.close()
	if !errors.Is(err, wsapi.ErrGone) {
		t.Fatalf("Text kept accepting after the client left: %v", err)
	}
	if !errors.Is(out.err, wsapi.ErrGone) {
		t.Errorf("relayed err = %v", out.err)
	}
	if !strings.HasPrefix(out.produced, out.sent) || out.sent != "token " {
		t.Errorf("sent %q, produced %q", out.sent, out.produced)
	}
}

package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/chat"
	"github.com/p2/buddy/lambda/claude"
	"github.com/p2/buddy/lambda/config"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/obs"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/tokens"
	"github.com/p2/buddy/lambda/wsapi"
)

// scripted is a model that starts, says its words and ends with err.
type scripted struct {
	words []string
	err   error
}

func (m scripted) Stream(ctx context.Context, _ claude.Request, h claude.Handler) (claude.Result, error) {
	res := claude.Result{Model: "claude-scripted", StopReason: "end_turn", Usage: tokens.Usage{InputTokens: 3, OutputTokens: int64(len(m.words))}}
	if err := h.OnStart(ctx, res.Model); err != nil {
		return res, err
	}
	for _, w := range m.words {
		if err := h.OnText(ctx, w); err != nil {
			return res, err
		}
	}
	return res, m.err
}

// stallingPoster holds every post of one frame type until the post's
// context ends, as an @connections endpoint that stopped answering does;
// other frames go through and are recorded.
type stallingPoster struct {
	stall string
	// release ends a stall that no deadline ended, once the test is over.
	release chan struct{}

	mu     sync.Mutex
	posted []string // types of the frames that went through
}

func (p *stallingPoster) Post(ctx context.Context, _ string, data []byte) error {
	var f wsapi.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	if f.Type == p.stall {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.release:
			return errors.New("the post had no deadline; released at the end of the test")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posted = append(p.posted, f.Type)
	return nil
}

func (p *stallingPoster) types() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.posted...)
}

// accept stores a new conversation's first message for user through s
// and returns its reply job.
func accept(t *testing.T, s *chat.Service, user, connectionID, text string) chat.Job {
	t.Helper()
	job, rej := s.Accept(t.Context(), user, connectionID, "https://x/test",
		wsapi.ClientFrame{Action: wsapi.ActionSendMessage, RequestID: "r-" + ids.New(), Text: text})
	if rej != nil {
		t.Fatalf("accept: %+v", rej)
	}
	return job
}

func TestRunFinishesWhenAPostStalls(t *testing.T) {
	errModel := &claude.Error{Kind: claude.KindUpstream, Started: true, Err: errors.New("stream cut")}
	tests := []struct {
		name        string
		stall       string // the frame type whose post stalls
		modelErr    error
		wantStatus  string
		wantOutcome string
	}{
		{"a stalled delta drops the listener; the reply is stored whole", wsapi.TypeDelta, nil, store.StatusComplete, obs.OutcomeOK},
		{"a stalled end frame is given up after the reply is stored", wsapi.TypeEnd, nil, store.StatusComplete, obs.OutcomeOK},
		{"a stalled error frame is given up and the cut-short reply kept", wsapi.TypeError, errModel, store.StatusIncomplete, obs.OutcomeModelError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			poster := &stallingPoster{stall: tt.stall, release: make(chan struct{})}
			t.Cleanup(func() { close(poster.release) })
			st := store.NewDynamo(dynamodblocal.TestTables(t))
			s := &chat.Service{
				Store:       st,
				Model:       scripted{words: []string{"Hello", " world"}, err: tt.modelErr},
				Posters:     func(string) wsapi.Poster { return poster },
				Config:      testConfig(config.Model{ModelID: "claude-test", MaxTokens: 100}),
				Window:      time.Millisecond,
				PostTimeout: 50 * time.Millisecond,
			}
			job := accept(t, s, "u", "c", "hi")

			// Without a post deadline Run never returns here: go test's
			// -timeout then fails the run with every goroutine's stack (the
			// stalled post among them); no deadline of the test's own, which
			// a busy machine could trip.
			var sum obs.Summary
			if err := s.Run(context.Background(), job, &sum); err != nil {
				t.Errorf("Run error = %v, want none (the reply was stored)", err)
			}
			if sum.Outcome != tt.wantOutcome {
				t.Errorf("outcome = %q, want %q (%v)", sum.Outcome, tt.wantOutcome, sum.Err)
			}
			if !errors.Is(sum.Err, context.DeadlineExceeded) {
				t.Errorf("summary error = %v, want it to say the post ran out of time", sum.Err)
			}
			for _, typ := range poster.types() {
				if typ == tt.stall {
					t.Errorf("the stalled %s frame counts as posted: %v", tt.stall, poster.types())
				}
			}
			m, err := st.GetMessage(context.Background(), "u", job.ConversationID, job.AssistantMessageID)
			if err != nil {
				t.Fatal(err)
			}
			if m.Text != "Hello world" || m.Status != tt.wantStatus {
				t.Errorf("stored %q (%s), want %q (%s)", m.Text, m.Status, "Hello world", tt.wantStatus)
			}
		})
	}
}

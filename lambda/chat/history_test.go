package chat_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

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

// contextWindow is the context window of every allowed model (Claude 4.5)
// in tokens. A token stands for at least one byte, so a request whose
// bytes and max tokens add up to at most this fits.
const contextWindow = 200_000

// recorder is a model that keeps the request it was sent and answers.
type recorder struct{ req claude.Request }

func (m *recorder) Stream(ctx context.Context, req claude.Request, h claude.Handler) (claude.Result, error) {
	m.req = req
	res := claude.Result{Model: "claude-test", StopReason: "end_turn", Usage: tokens.Usage{InputTokens: 1, OutputTokens: 1}}
	if err := h.OnStart(ctx, res.Model); err != nil {
		return res, err
	}
	return res, h.OnText(ctx, "ok")
}

// boundedReads is the store, failing the test when a whole conversation
// is read: a long one would cost its every byte before each reply.
type boundedReads struct {
	store.Store
	t *testing.T
}

func (s boundedReads) ListMessages(ctx context.Context, conversationID string) ([]store.Message, error) {
	s.t.Errorf("the reply read the whole conversation %s", conversationID)
	return s.Store.ListMessages(ctx, conversationID)
}

// testConfig is a runtime configuration with m and the defaults a reply
// needs.
func testConfig(m config.Model) config.Runtime {
	return config.Runtime{Model: m, MaxInflightReplies: config.DefaultMaxInflightReplies, OrphanGrace: config.DefaultOrphanGrace}
}

type discardPoster struct{}

func (discardPoster) Post(context.Context, string, []byte) error { return nil }

// seedExchange stores n-1 messages of user in a new conversation, oldest
// first, alternating user and assistant (the nth, the user's, is the one
// the test sends), each size bytes, and returns all n.
func seedExchange(t *testing.T, st store.Store, user string, n, size int) (store.Conversation, []store.Message) {
	t.Helper()
	c := store.Conversation{UserID: user, ConversationID: ids.New(), Title: "long"}
	if err := st.CreateConversation(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	msgs := make([]store.Message, n)
	for i := range msgs {
		role := store.RoleUser
		if (n-1-i)%2 == 1 {
			role = store.RoleAssistant
		}
		msgs[i] = store.Message{ConversationID: c.ConversationID, MessageID: ids.New(), UserID: user, Role: role,
			Text: fmt.Sprintf("%0*d", size, i)}
		if i == n-1 {
			break
		}
		if err := st.PutMessage(t.Context(), msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return c, msgs
}

func TestTheModelGetsTheNewestTurnsThatFitItsWindow(t *testing.T) {
	tests := []struct {
		name      string
		messages  int
		size      int // bytes of each message
		system    string
		maxTokens int64
		// atLeast keeps the bound from being met by sending next to
		// nothing.
		atLeast int
	}{
		{"a conversation far larger than the window", 301, 5_000, "", 4096, 30},
		{"many short turns stop at the turn bound", 301, 10, "Be brief.", 4096, 99},
		{"a long system prompt and max tokens leave less room", 301, 5_000, strings.Repeat("s", 80_000), 64_000, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := store.NewDynamo(dynamodblocal.TestTables(t))
			conv, msgs := seedExchange(t, st, "alice", tt.messages, tt.size)
			model := &recorder{}
			s := &chat.Service{
				Store:   boundedReads{Store: st, t: t},
				Model:   model,
				Posters: func(string) wsapi.Poster { return discardPoster{} },
				Config:  testConfig(config.Model{ModelID: "claude-test", MaxTokens: tt.maxTokens}),
			}
			f := wsapi.ClientFrame{Action: wsapi.ActionSendMessage, RequestID: "r", ConversationID: conv.ConversationID, Text: msgs[len(msgs)-1].Text}
			if tt.system != "" {
				p := store.Prompt{UserID: "alice", PromptID: ids.New(), Name: "p", Text: tt.system}
				if err := st.CreatePrompt(t.Context(), p, 0); err != nil {
					t.Fatal(err)
				}
				f.PromptID = p.PromptID
			}
			job, rej := s.Accept(t.Context(), "alice", "c", "https://x/test", f)
			if rej != nil {
				t.Fatalf("accept: %+v", rej)
			}
			var sum obs.Summary
			if err := s.Run(t.Context(), job, &sum); err != nil {
				t.Fatal(err)
			}
			if model.req.System != tt.system {
				t.Errorf("system prompt %.20q, want %.20q", model.req.System, tt.system)
			}

			turns := model.req.Turns
			if len(turns) < tt.atLeast || len(turns) > 100 {
				t.Fatalf("%d turns sent, want %d to 100", len(turns), tt.atLeast)
			}
			if turns[0].Role != store.RoleUser {
				t.Errorf("the first turn is the %s's, want the user's", turns[0].Role)
			}
			// The turns are the newest messages, in order, up to the one
			// being answered.
			newest := msgs[len(msgs)-len(turns):]
			for i, turn := range turns {
				if turn.Role != newest[i].Role || turn.Text != newest[i].Text {
					t.Fatalf("turn %d is %s %.20q, want %s %.20q", i, turn.Role, turn.Text, newest[i].Role, newest[i].Text)
				}
			}
			size := len(model.req.System) + int(model.req.MaxTokens)
			for _, turn := range turns {
				size += len(turn.Text)
			}
			if size > contextWindow {
				t.Errorf("%d turns, system prompt and max tokens take up to %d tokens, past the %d-token window", len(turns), size, contextWindow)
			}
		})
	}
}

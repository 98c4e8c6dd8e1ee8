package wsclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/p2/buddy/lambda/dev/wsclient"
)

// server answers the first message of each socket with frames, and reports
// the token it was dialled with.
func server(t *testing.T, frames []string, tokens chan<- string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tokens != nil {
			tokens <- r.URL.Query().Get("token")
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
		for _, f := range frames {
			if err := c.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
				return
			}
		}
		_, _, _ = c.Read(ctx) // until the client goes
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestCollectFollowsTheProtocolsOrder(t *testing.T) {
	const (
		start = `{"type":"start","requestId":"r","conversationId":"c","messageId":"m"}`
		end   = `{"type":"end","requestId":"r","conversationId":"c","messageId":"m","stopReason":"end_turn"}`
	)
	delta := func(seq string) string {
		return `{"type":"delta","requestId":"r","seq":` + seq + `,"text":"t` + seq + ` "}`
	}
	tests := []struct {
		name    string
		frames  []string
		text    string
		errCode string // an error frame's code
		wantErr string // "" when the reply is in order
	}{
		{"start, deltas in order, end", []string{start, delta("0"), delta("1"), end}, "t0 t1 ", "", ""},
		{"an error frame ends the request", []string{`{"type":"error","requestId":"r","code":"not_found","message":"no"}`}, "", "not_found", ""},
		{"a delta before start", []string{delta("0")}, "", "", "delta before start"},
		{"a seq gap", []string{start, delta("0"), delta("2")}, "", "", "lost, duplicated or out of order"},
		{"a repeated seq", []string{start, delta("0"), delta("0")}, "", "", "lost, duplicated or out of order"},
		{"end before start", []string{end}, "", "", "end before start"},
		{"a frame of another request", []string{`{"type":"start","requestId":"other"}`}, "", "", "another request"},
		{"a frame of an unknown type", []string{start, `{"type":"dance","requestId":"r"}`}, "", "", "unexpected frame"},
		{"a frame that is not JSON", []string{start, `{`}, "", "", "not a server frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens := make(chan string, 1)
			c, _, err := wsclient.Dial(t.Context(), server(t, tt.frames, tokens), "tok en")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := <-tokens; got != "tok en" {
				t.Errorf("the server saw token %q", got)
			}
			r, err := c.Chat(t.Context(), wsclient.SendMessage{RequestID: "r", Text: "hi"})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Collect: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Collect error %v, want %q", err, tt.wantErr)
			case tt.wantErr != "":
				return
			}
			if r.Text() != tt.text {
				t.Errorf("text %q, want %q", r.Text(), tt.text)
			}
			code := ""
			if r.Err != nil {
				code = r.Err.Code
			}
			if code != tt.errCode {
				t.Errorf("error frame code %q, want %q", code, tt.errCode)
			}
		})
	}
}

func TestCollectResumedStartsAfterTheClientsLastSeq(t *testing.T) {
	const end = `{"type":"end","requestId":"r2","conversationId":"c","messageId":"m","stopReason":"end_turn"}`
	delta := func(seq string) string {
		return `{"type":"delta","requestId":"r2","seq":` + seq + `,"text":"t` + seq + ` "}`
	}
	tests := []struct {
		name    string
		frames  []string
		text    string
		wantErr string
	}{
		{"deltas from afterSeq+1, then end", []string{delta("3"), delta("4"), end}, "t3 t4 ", ""},
		{"an ended reply resumed at its last seq is just its end", []string{end}, "", ""},
		{"a delta the client already has", []string{delta("2")}, "", "lost, duplicated or out of order"},
		{"a gap after afterSeq", []string{delta("4")}, "", "lost, duplicated or out of order"},
		{"a start is not part of a resume", []string{`{"type":"start","requestId":"r2"}`}, "", "start out of place"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := wsclient.Dial(t.Context(), server(t, tt.frames, nil), "tok")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Resume(t.Context(), "r2", "m", 2); err != nil {
				t.Fatal(err)
			}
			r, err := c.CollectResumed(t.Context(), "r2", 2)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CollectResumed: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CollectResumed error %v, want %q", err, tt.wantErr)
			case tt.wantErr != "":
				return
			}
			if r.Text() != tt.text || r.End.StopReason != "end_turn" {
				t.Errorf("text %q, end %+v; want %q and the end", r.Text(), r.End, tt.text)
			}
		})
	}
}

package devserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// The chat page's Stop button and its resume after a dropped socket, end
// to end in chromium: they need the backend's stop and resume actions.

// shownReply is an assistant message as the page shows it.
type shownReply struct {
	State, Text, Meta, StopReason, MessageID string
}

// finishedReply waits until the page's newest reply has ended, well or
// not, and returns it.
func finishedReply(t *testing.T, page context.Context) shownReply {
	t.Helper()
	return waitFor[shownReply](t, page, "the reply to end", `(() => {
		const ms = document.querySelectorAll("#messages li.assistant");
		const m = ms[ms.length - 1];
		if (!m || m.dataset.state === "streaming") return null;
		return {state: m.dataset.state, text: m.querySelector(".text").textContent, meta: m.querySelector(".meta").textContent,
			stopReason: m.dataset.stopReason || "", messageId: m.dataset.messageId || ""};
	})()`)
}

// storedReply is the assistant message of the user's only conversation.
func storedReply(t *testing.T, srv *Server, user string) apiMessage {
	t.Helper()
	conv := onlyConversation[apiConversation](t, srv, user)
	if len(conv.Messages) != 2 {
		t.Fatalf("the conversation holds %+v, want the message and its reply", conv.Messages)
	}
	return conv.Messages[1]
}

// onlyConversation reads the user's only conversation, with its messages,
// through the HTTP API into C.
func onlyConversation[C any](t *testing.T, srv *Server, user string) C {
	t.Helper()
	ctx := testCtx(t)
	token, err := srv.Token(user)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Conversations []apiConversation `json:"conversations"`
	}
	if st := callAPI(ctx, t, srv, "Bearer "+token, http.MethodGet, "/conversations", nil, &list); st != 200 || len(list.Conversations) != 1 {
		t.Fatalf("GET /conversations: %d %+v", st, list)
	}
	var conv C
	if st := callAPI(ctx, t, srv, "Bearer "+token, http.MethodGet, "/conversations/"+list.Conversations[0].ID, nil, &conv); st != 200 {
		t.Fatalf("GET /conversations/%s: %d", list.Conversations[0].ID, st)
	}
	return conv
}

func TestChatPageStopButtonStopsTheReply(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "stop")

	// About two minutes of reply: it only ends this quickly if stopped.
	sendOnPage(t, page, "[[tokens=4000]] [[rate=30]] Stop me")
	waitFor[bool](t, page, "some text and the Stop button", `(() => {
		const m = document.querySelector("#messages li.assistant[data-state=streaming]");
		return !!m && m.querySelector(".text").textContent.length > 0 && !document.getElementById("stop").hidden;
	})()`)
	evalPage(t, page, `document.getElementById("stop").click()`)

	shown := finishedReply(t, page)
	if shown.State != "done" || shown.StopReason != "stopped" || !strings.Contains(shown.Meta, "stopped") || shown.Text == "" {
		t.Errorf("after Stop the page shows %+v, want a reply that ended with stopReason stopped", shown)
	}
	if evalValue[bool](t, page, `!document.getElementById("stop").hidden`) {
		t.Error("the Stop button still shows after the reply stopped")
	}
	// What was produced is stored, exactly as shown.
	stored := storedReply(t, srv, user)
	if stored.Text != shown.Text || stored.Status != "stopped" || stored.ID != shown.MessageID {
		t.Errorf("the page shows %q (message %s), the store holds %+v", shown.Text, shown.MessageID, stored)
	}
}

func TestChatPageResumesAReplyAfterTheSocketDrops(t *testing.T) {
	srv := sharedServer(t)
	page := openChatPage(t, srv)
	user := signInOnPage(t, page, "resume")

	// A few seconds of reply, cut in the middle.
	sendOnPage(t, page, "[[tokens=300]] [[rate=60]] Resume me")
	before := waitFor[string](t, page, "the first deltas", `(() => {
		const m = document.querySelector("#messages li.assistant[data-state=streaming]");
		const text = m ? m.querySelector(".text").textContent : "";
		return text.length > 20 ? text : "";
	})()`)
	connects := srv.Stats().Connects
	if n := dropBrowserSockets(srv); n != 1 {
		t.Fatalf("dropped %d browser sockets, want 1", n)
	}

	shown := finishedReply(t, page)
	if shown.State != "done" || shown.StopReason == "stopped" {
		t.Fatalf("after the drop the page shows %+v, want the reply resumed to its end", shown)
	}
	if !strings.HasPrefix(shown.Text, before) || len(shown.Text) <= len(before) {
		t.Errorf("the page showed %q before the drop and %q at the end: not one continuous reply", before, shown.Text)
	}
	if srv.Stats().Connects <= connects {
		t.Error("the page did not reconnect")
	}
	waitFor[bool](t, page, "the status to say connected", `document.getElementById("status").textContent.startsWith("Connected as ")`)
	// Shown once and without a gap: exactly the stored reply.
	stored := storedReply(t, srv, user)
	if stored.Text != shown.Text || stored.ID != shown.MessageID {
		t.Errorf("the page shows %q (message %s), the store holds %+v", shown.Text, shown.MessageID, stored)
	}
}

// dropBrowserSockets cuts chromium's open WebSockets without a close
// frame, as a network failure does (the page sees 1006), and returns how
// many it cut.
func dropBrowserSockets(srv *Server) int {
	g := srv.ws
	var open []*wsConn
	g.mu.Lock()
	for _, c := range g.conns {
		if c.state == stateOpen && strings.Contains(c.userAgent, "Chrome") {
			open = append(open, c)
		}
	}
	g.mu.Unlock()
	for _, c := range open {
		_ = c.ws.CloseNow()
	}
	return len(open)
}

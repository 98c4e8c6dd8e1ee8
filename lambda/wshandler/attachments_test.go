package wshandler_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/p2/buddy/lambda/dev/s3local"
	"github.com/p2/buddy/lambda/dev/testfiles"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
	"github.com/p2/buddy/lambda/uploads"
	"github.com/p2/buddy/lambda/wsapi"
)

// upload declares, sends (to the S3 emulator) and completes a file of
// user's through the HTTP API, as a browser does, and returns its id.
func (h *harness) upload(user, name, contentType string, file []byte) string {
	h.t.Helper()
	body := fmt.Sprintf(`{"name":%q,"contentType":%q,"size":%d}`, name, contentType, len(file))
	status, c := h.http("conversations", user, manifest.RouteCreateUpload, nil, nil, body)
	if status != http.StatusCreated {
		h.t.Fatalf("POST /uploads: %d %v", status, c)
	}
	up, post := c["upload"].(map[string]any), c["post"].(map[string]any)
	fields := map[string]string{}
	for k, v := range post["fields"].(map[string]any) {
		fields[k] = v.(string)
	}
	if st, code, err := s3local.PostObject(context.Background(), post["url"].(string), fields, file); err != nil || st >= 300 {
		h.t.Fatalf("upload to S3: %d %s %v", st, code, err)
	}
	id := up["id"].(string)
	if status, body := h.http("conversations", user, manifest.RouteCompleteUpload, map[string]string{"id": id}, nil, ""); status != http.StatusOK {
		h.t.Fatalf("complete %s: %d %v", name, status, body)
	}
	return id
}

// attachFrame is a sendMessage carrying uploads.
func attachFrame(requestID, conversationID, text string, uploadIDs ...string) string {
	b, _ := json.Marshal(wsapi.ClientFrame{Action: wsapi.ActionSendMessage, RequestID: requestID, ConversationID: conversationID, Text: text, Attachments: uploadIDs})
	return string(b)
}

func sha12(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:])[:12] }

// Images and PDFs a message carries reach the model as blocks before its
// text (the stand-in describes what it received), are stored with the
// message and shown by GET /conversations/{id}, are sent again with every
// later turn, and go with their conversation.
func TestAttachmentsReachClaudeAndGoWithTheirConversation(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	png, pdf := testfiles.Image(uploads.PNG, 40, 30), testfiles.PDF("1.7", 2, false)
	img, doc := h.upload("alice", "cat.png", uploads.PNG, png), h.upload("alice", "paper.pdf", uploads.PDF, pdf)

	frames := h.send(conn, attachFrame("r1", "", "[[describe]]", img, doc))
	text, last := checkReply(t, frames, "r1")
	want := fmt.Sprintf("image image/png 40x30 sha256:%s\ndocument application/pdf 2 pages sha256:%s", sha12(png), sha12(pdf))
	if text != want || last.Usage.InputTokens+last.Usage.CacheCreationInputTokens < uploads.Tokens(uploads.PDF, 0, 0, 2) {
		t.Fatalf("the model saw %q (usage %+v), want %q", text, last.Usage, want)
	}
	convID := frames[0].ConversationID
	_, got := h.http("conversations", "alice", manifest.RouteGetConversation, map[string]string{"id": convID}, nil, "")
	first := got["messages"].([]any)[0].(map[string]any)
	atts, _ := first["attachments"].([]any)
	if len(atts) != 2 || atts[0].(map[string]any)["name"] != "cat.png" || atts[0].(map[string]any)["width"] != 40.0 || atts[1].(map[string]any)["pages"] != 2.0 {
		t.Errorf("the stored message carries %v", first["attachments"])
	}
	// A follow-up sends the earlier turn's attachments again.
	checkReply(t, h.send(conn, sendFrame("r2", convID, "", "and now? [[tokens=3]]")), "r2")
	req, _ := h.model.LastRequest()
	if c := req.Messages[0].Content; len(c) != 3 || c[0].Type != "image" || c[1].Type != "document" {
		t.Errorf("the follow-up's first turn: %+v", c)
	}
	// An attached upload is deleted with its conversation only.
	if status, _ := h.http("conversations", "alice", manifest.RouteDeleteUpload, map[string]string{"id": img}, nil, ""); status != http.StatusBadRequest {
		t.Errorf("DELETE of an attached upload: %d, want 400", status)
	}
	if status, _ := h.http("conversations", "alice", manifest.RouteDeleteConversation, map[string]string{"id": convID}, nil, ""); status != http.StatusNoContent {
		t.Fatalf("delete the conversation: %d", status)
	}
	for _, id := range []string{img, doc} {
		if status, _ := h.http("conversations", "alice", manifest.RouteGetUpload, map[string]string{"id": id}, nil, ""); status != http.StatusNotFound {
			t.Errorf("GET /uploads/%s after its conversation's delete: %d, want 404", id, status)
		}
		if _, err := h.bucket.Head(context.Background(), id); err != uploads.ErrNoObject {
			t.Errorf("object %s after its conversation's delete: %v", id, err)
		}
	}
}

// What a message may not carry is refused before anything is stored.
func TestAttachmentsThatCannotBeSentAreRefused(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	ready := func() string { return h.upload("alice", "cat.png", uploads.PNG, testfiles.Image(uploads.PNG, 8, 8)) }
	used := ready()
	frames := h.send(conn, attachFrame("r0", "", "first", used))
	checkReply(t, frames, "r0")
	// A pending upload: declared, never completed.
	_, c := h.http("conversations", "alice", manifest.RouteCreateUpload, nil, nil, `{"name":"x.png","contentType":"image/png","size":10}`)
	pending := c["upload"].(map[string]any)["id"].(string)
	theirs := h.upload("bob", "cat.png", uploads.PNG, testfiles.Image(uploads.PNG, 8, 8))
	huge := func() string { return h.upload("alice", "huge.png", uploads.PNG, testfiles.PNGHeader(8000, 8000)) }
	tests := []struct {
		name, frame, code, want string
	}{
		{"a pending upload", attachFrame("r1", "", "hi", ready(), pending), errcode.BadRequest, "is pending"},
		{"another user's upload", attachFrame("r2", "", "hi", theirs), errcode.NotFound, "not found"},
		{"an unknown upload", attachFrame("r3", "", "hi", "01JABCDEFGHJKMNPQRSTVWXYZ0"), errcode.NotFound, "not found"},
		{"an upload of another conversation", attachFrame("r4", "", "hi", used), errcode.BadRequest, "another conversation"},
		{"21 attachments", attachFrame("r5", "", "hi", strings.Split(strings.Repeat("x,", 20)+"y", ",")...), errcode.BadRequest, "1 to 20"},
		{"attachments too large for the model", attachFrame("r6", "", "hi", huge(), huge(), huge()), errcode.TooLarge, "tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			convs, msgs := h.counts("alice")
			got := h.send(conn, tt.frame)
			if len(got) != 1 || got[0].Type != wsapi.TypeError || got[0].Code != tt.code || !strings.Contains(got[0].Message, tt.want) {
				t.Fatalf("frames %+v, want %s saying %q", got, tt.code, tt.want)
			}
			if c, m := h.counts("alice"); c != convs || m != msgs {
				t.Errorf("stored %d conversations, %d messages; before: %d, %d", c, m, convs, msgs)
			}
		})
	}
}

// An attachment whose object cannot be read when the reply runs (S3
// unavailable, or the object gone) ends the reply with an error; nothing
// half-made is stored and what it took is given back.
func TestAnAttachmentThatCannotBeReadFailsTheReply(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	conn := h.connect("alice")
	id := h.upload("alice", "cat.png", uploads.PNG, testfiles.Image(uploads.PNG, 8, 8))
	if err := h.bucket.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	frames := h.send(conn, attachFrame("r1", "", "what is it?", id))
	last := frames[len(frames)-1]
	if last.Type != wsapi.TypeError || last.Code != errcode.Internal {
		t.Fatalf("last frame %+v, want an internal error", last)
	}
	if m := h.storedReply("alice", frames[0].ConversationID, frames[0].MessageID); m.Status != store.StatusFailed || m.Text != "" {
		t.Errorf("stored %s %q", m.Status, m.Text)
	}
	if h.model.Calls() != 0 {
		t.Error("the model was called without the attachment")
	}
	h.checkNothingHeld(t, "alice")
}

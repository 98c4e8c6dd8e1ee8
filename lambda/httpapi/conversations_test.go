package httpapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/store"
)

// seedConversations stores three conversations of alice, oldest first,
// and then one of bob, the newest of all: a listing that leaked across
// users would show it first.
func seedConversations(t *testing.T, a *api) (alice []string, bob string) {
	t.Helper()
	base := time.Now().UTC().Add(-time.Hour)
	for i := range 3 {
		alice = append(alice, a.seedConversation(t, "alice", fmt.Sprintf("conversation %d", i), base.Add(time.Duration(i)*time.Minute)))
	}
	return alice, a.seedConversation(t, "bob", "bob's", base.Add(10*time.Minute))
}

func TestConversationsListNewestFirstInPages(t *testing.T) {
	a := newAPI(t, 0)
	convs, _ := seedConversations(t, a)

	// Each page goes on from the cursor of the one before, as a client
	// walks the list.
	tests := []struct {
		name string
		want []string
		more bool
	}{
		{"first page", []string{convs[2], convs[1]}, true},
		{"last page", []string{convs[0]}, false},
	}
	cursor := ""
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			query := map[string]string{"limit": "2"}
			if cursor != "" {
				query["cursor"] = cursor
			}
			status, body := call(t, a.conversations, request("alice", "GET /conversations", nil, query, ""))
			if status != 200 {
				t.Fatalf("status %d, want 200: %v", status, body)
			}
			var got []string
			for _, c := range list(body, "conversations") {
				id, _ := c["id"].(string)
				got = append(got, id)
			}
			if !slices.Equal(got, tt.want) || (body["nextCursor"] != nil) != tt.more {
				t.Fatalf("page %v, want ids %v and a next cursor: %v", body, tt.want, tt.more)
			}
			cursor, _ = body["nextCursor"].(string)
		})
	}
}

func TestConversationRoutesServeOnlyTheCallersOwnAndValidRequests(t *testing.T) {
	a := newAPI(t, 0)
	convs, bobConv := seedConversations(t, a)
	id := func(s string) map[string]string { return map[string]string{"id": s} }

	// The rows run in order on the same data: the deletions come after
	// the reads and renames that need the conversation.
	runRoutes(t, a.conversations, []routeCase{
		{"no token", "", "GET /conversations", nil, nil, "", 401, errcode.Unauthorized, nil},
		{"get own", "alice", "GET /conversations/{id}", id(convs[0]), nil, "", 200, "", func(b map[string]any) bool {
			ms := list(b, "messages")
			return b["id"] == convs[0] && b["title"] == "conversation 0" && len(ms) == 2 && ms[0]["role"] == store.RoleUser && ms[1]["role"] == store.RoleAssistant
		}},
		{"get someone else's", "alice", "GET /conversations/{id}", id(bobConv), nil, "", 404, errcode.NotFound, nil},
		{"get unknown", "alice", "GET /conversations/{id}", id("01JD0000000000000000000000"), nil, "", 404, errcode.NotFound, nil},
		{"get junk id", "alice", "GET /conversations/{id}", id("'; DROP TABLE"), nil, "", 404, errcode.NotFound, nil},
		{"bad limit", "alice", "GET /conversations", nil, map[string]string{"limit": "0"}, "", 400, errcode.BadRequest, nil},
		{"bad cursor", "alice", "GET /conversations", nil, map[string]string{"cursor": "garbage"}, "", 400, errcode.BadRequest, nil},
		{"rename", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, `{"title":"Renamed"}`, 200, "", func(b map[string]any) bool { return b["title"] == "Renamed" }},
		{"rename someone else's", "alice", "PATCH /conversations/{id}", id(bobConv), nil, `{"title":"Mine now"}`, 404, errcode.NotFound, nil},
		{"rename without title", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, `{}`, 400, errcode.BadRequest, nil},
		{"rename to blank", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, `{"title":"  "}`, 400, errcode.BadRequest, nil},
		{"rename too long", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, `{"title":"` + strings.Repeat("x", 201) + `"}`, 400, errcode.BadRequest, nil},
		{"rename with unknown field", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, `{"title":"a","owner":"bob"}`, 400, errcode.BadRequest, nil},
		{"rename with invalid JSON", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, `{"title":`, 400, errcode.BadRequest, nil},
		{"delete someone else's", "alice", "DELETE /conversations/{id}", id(bobConv), nil, "", 404, errcode.NotFound, nil},
		{"delete own", "alice", "DELETE /conversations/{id}", id(convs[1]), nil, "", 204, "", nil},
		{"delete again", "alice", "DELETE /conversations/{id}", id(convs[1]), nil, "", 404, errcode.NotFound, nil},
		{"get deleted", "alice", "GET /conversations/{id}", id(convs[1]), nil, "", 404, errcode.NotFound, nil},
		{"unknown route", "alice", "POST /conversations", nil, nil, "{}", 404, errcode.NotFound, nil},
		{"over-size body", "alice", "PATCH /conversations/{id}", id(convs[0]), nil, strings.Repeat(" ", 128*1024+1), 413, errcode.TooLarge, nil},
	})

	// The rename was stored, not only answered.
	_, body := call(t, a.conversations, request("alice", "GET /conversations/{id}", id(convs[0]), nil, ""))
	if body["title"] != "Renamed" {
		t.Errorf("rename not stored: %v", body["title"])
	}
	// The deleted conversation took its messages with it.
	if c, m := a.counts(t, "alice"); c != 2 || m != 4 {
		t.Errorf("alice has %d conversations, %d messages; want 2 and 4", c, m)
	}
	if c, m := a.counts(t, "bob"); c != 1 || m != 2 {
		t.Errorf("bob's data changed: %d conversations, %d messages", c, m)
	}
}

// pageBody is a GET /conversations/{id} body as a client reads it.
type pageBody struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Messages []struct {
		ID   string `json:"id"`
		Role string `json:"role"`
		Text string `json:"text"`
	} `json:"messages"`
	OlderCursor *string `json:"olderCursor"`
}

// getPage runs GET /conversations/{id} as user and returns the response
// and its body decoded.
func getPage(t *testing.T, a *api, user, id string, query map[string]string) (events.APIGatewayV2HTTPResponse, pageBody) {
	t.Helper()
	resp, err := a.conversations.Handle(t.Context(), request(user, "GET /conversations/{id}", map[string]string{"id": id}, query, ""))
	if err != nil {
		t.Fatal(err)
	}
	var body pageBody
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
			t.Fatalf("body is not a conversation: %v", err)
		}
	}
	return resp, body
}

// seedTexts stores a conversation of user holding one message per text,
// oldest first, alternating user and assistant, and returns its id and
// the message ids.
func (a *api) seedTexts(t *testing.T, user string, texts []string) (string, []string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	id := ids.New()
	if err := a.store.CreateConversation(ctx, store.Conversation{UserID: user, ConversationID: id, Title: "long", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	msgIDs := make([]string, len(texts))
	for i, text := range texts {
		m := store.Message{ConversationID: id, MessageID: ids.New(), UserID: user, Role: store.RoleUser, Text: text, CreatedAt: now}
		if i%2 == 1 {
			m.Role, m.Model, m.StopReason = store.RoleAssistant, "claude-x", "end_turn"
		}
		if err := a.store.PutMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		msgIDs[i] = m.MessageID
	}
	return id, msgIDs
}

// texts is n texts of size bytes, each made of unit repeated and told
// apart by its number.
func texts(n, size int, unit string) []string {
	out := make([]string, n)
	for i := range out {
		head := fmt.Sprintf("%02d:", i)
		out[i] = head + strings.Repeat(unit, (size-len(head))/len(unit))
	}
	return out
}

// No response of the HTTP API exceeds 4 MB, and what the function returns
// (the body escaped again inside API Gateway's response envelope) stays
// within Lambda's limit: a page ends early for either, and the cursor
// carries on from there.
func TestConversationPagesStayUnderFourMegabytesAndCoverEveryMessageOnce(t *testing.T) {
	const limit4MB = 4 << 20
	a := newAPI(t, 0)
	tests := []struct {
		name  string
		texts []string
		limit string
		// pages is the number of pages expected, 0 for "more than one"
		// (where the bytes cut them, not the count).
		pages int
	}{
		{"20 × 99 KB of plain text fit one page", texts(20, 99_000, "x"), "", 1},
		{"20 × 99 KB of control characters, six bytes each in the body, take several pages", texts(20, 99_000, "\x01"), "", 0},
		{"20 × 99 KB of quotes, 4 MB of body but 8 MB of envelope, take several pages", texts(20, 99_000, `"`), "", 0},
		{"20 × 99 KB of backslashes and quotes take several pages", texts(20, 99_000, `\"`), "", 0},
		{"20 × 99 KB of <>&, as they are in the body but six bytes each in the envelope, take several pages", texts(20, 99_000, "<>&"), "", 0},
		{"20 × 99 KB by 3", texts(20, 99_000, "x"), "3", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			convID, want := a.seedTexts(t, "alice", tt.texts)
			var got []string // message ids, oldest first
			seen := map[string]bool{}
			pages := 0
			query := map[string]string{}
			if tt.limit != "" {
				query["limit"] = tt.limit
			}
			for {
				resp, body := getPage(t, a, "alice", convID, query)
				pages++
				if resp.StatusCode != 200 {
					t.Fatalf("page %d: status %d", pages, resp.StatusCode)
				}
				if len(resp.Body) > limit4MB {
					t.Errorf("page %d is %d bytes, over 4 MB", pages, len(resp.Body))
				}
				if n := envelopeSize(t, resp); n > lambdaResponseLimit {
					t.Errorf("page %d returns %d bytes, over Lambda's %d", pages, n, lambdaResponseLimit)
				}
				if len(body.Messages) == 0 {
					t.Fatalf("page %d holds no message", pages)
				}
				var pageIDs []string
				for _, m := range body.Messages {
					if seen[m.ID] {
						t.Fatalf("message %s on two pages", m.ID)
					}
					seen[m.ID] = true
					pageIDs = append(pageIDs, m.ID)
					if i := slices.Index(want, m.ID); i < 0 || m.Text != tt.texts[i] {
						t.Fatalf("message %s is not as stored", m.ID)
					}
				}
				got = append(pageIDs, got...)
				if body.OlderCursor == nil {
					break
				}
				if pages > len(tt.texts) {
					t.Fatal("cursors never end")
				}
				query["cursor"] = *body.OlderCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages hold %d messages out of order or with gaps, want all %d oldest first", len(got), len(want))
			}
			if (tt.pages == 0 && pages < 2) || (tt.pages > 0 && pages != tt.pages) {
				t.Errorf("%d pages, want %d (0: more than one)", pages, tt.pages)
			}
		})
	}
}

func TestConversationPageQueries(t *testing.T) {
	a := newAPI(t, 0)
	convID, msgIDs := a.seedTexts(t, "alice", texts(201, 10, "x"))
	otherID, _ := a.seedTexts(t, "alice", texts(3, 10, "x"))
	bobID, _ := a.seedTexts(t, "bob", texts(3, 10, "x"))
	_, first := getPage(t, a, "alice", otherID, map[string]string{"limit": "1"})
	_, listed := call(t, a.conversations, request("alice", "GET /conversations", nil, map[string]string{"limit": "1"}, ""))
	listCursor, _ := listed["nextCursor"].(string)
	if first.OlderCursor == nil || listCursor == "" {
		t.Fatal("no cursors to try")
	}

	tests := []struct {
		name   string
		user   string
		conv   string
		query  map[string]string
		status int
		code   string
		newest int // the newest messages the page holds
		cursor bool
	}{
		{"no limit: the newest 100", "alice", convID, nil, 200, "", 100, true},
		{"limit 1", "alice", convID, map[string]string{"limit": "1"}, 200, "", 1, true},
		{"limit 200", "alice", convID, map[string]string{"limit": "200"}, 200, "", 200, true},
		{"limit 0", "alice", convID, map[string]string{"limit": "0"}, 400, errcode.BadRequest, 0, false},
		{"limit 201", "alice", convID, map[string]string{"limit": "201"}, 400, errcode.BadRequest, 0, false},
		{"limit -1", "alice", convID, map[string]string{"limit": "-1"}, 400, errcode.BadRequest, 0, false},
		{"limit not a number", "alice", convID, map[string]string{"limit": "ten"}, 400, errcode.BadRequest, 0, false},
		{"junk cursor", "alice", convID, map[string]string{"cursor": "garbage"}, 400, errcode.BadRequest, 0, false},
		{"another conversation's cursor", "alice", convID, map[string]string{"cursor": *first.OlderCursor}, 400, errcode.BadRequest, 0, false},
		{"the conversation list's cursor", "alice", convID, map[string]string{"cursor": listCursor}, 400, errcode.BadRequest, 0, false},
		{"someone else's conversation", "alice", bobID, nil, 404, errcode.NotFound, 0, false},
		{"someone else's conversation with the owner's cursor", "bob", otherID, map[string]string{"cursor": *first.OlderCursor}, 404, errcode.NotFound, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, a.conversations, request(tt.user, "GET /conversations/{id}", map[string]string{"id": tt.conv}, tt.query, ""))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.code != "" {
				checkError(t, body, tt.code)
				return
			}
			var got []string
			for _, m := range list(body, "messages") {
				id, _ := m["id"].(string)
				got = append(got, id)
			}
			if want := msgIDs[len(msgIDs)-tt.newest:]; !slices.Equal(got, want) {
				t.Errorf("page holds %d messages, want the newest %d oldest first", len(got), tt.newest)
			}
			if _, ok := body["olderCursor"]; ok != tt.cursor {
				t.Errorf("olderCursor present: %v, want %v", ok, tt.cursor)
			}
		})
	}
}

package httpapi_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/errcode"
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
	tests := []struct {
		name     string
		user     string
		routeKey string
		params   map[string]string
		query    map[string]string
		body     string
		status   int
		code     string
		check    func(map[string]any) bool
	}{
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, a.conversations, request(tt.user, tt.routeKey, tt.params, tt.query, tt.body))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, body)
			}
			if tt.code != "" {
				checkError(t, body, tt.code)
			}
			if tt.check != nil && !tt.check(body) {
				t.Errorf("body %v", body)
			}
		})
	}

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

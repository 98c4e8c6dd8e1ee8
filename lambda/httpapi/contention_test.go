package httpapi_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/p2/buddy/lambda/dev/contention"
	"github.com/p2/buddy/lambda/dev/dynamodblocal"
	"github.com/p2/buddy/lambda/errcode"
	"github.com/p2/buddy/lambda/httpapi"
	"github.com/p2/buddy/lambda/ids"
	"github.com/p2/buddy/lambda/manifest"
	"github.com/p2/buddy/lambda/store"
)

// A route whose writes keep meeting the caller's own concurrent requests
// on the same items (DynamoDB's TransactionConflict) answers 429
// rate_limited with Retry-After, never 500: it is no fault of ours.
func TestContentionAnswersRateLimited(t *testing.T) {
	client, tables := dynamodblocal.TestTables(t)
	db := contention.Wrap(client, nil)
	st := store.NewDynamo(db, tables)
	rt := &httpapi.Router{Function: manifest.ConversationAPI.Name, Log: slog.New(slog.DiscardHandler), Routes: (&httpapi.Conversations{Store: st}).Routes()}
	c := store.Conversation{UserID: "alice", ConversationID: ids.New(), Title: "t", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateConversation(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		conflict   func(contention.Write) bool
		wantStatus int
	}{
		{"no conflict", nil, http.StatusOK},
		{"the rename keeps meeting a transaction", func(w contention.Write) bool { return w.Op == "UpdateItem" }, http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db.Conflict = tt.conflict
			resp, err := rt.Handle(t.Context(), request("alice", manifest.RouteRenameConversation, map[string]string{"id": c.ConversationID}, nil, `{"title":"new"}`))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, resp.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusTooManyRequests {
				status, body := call(t, rt, request("alice", manifest.RouteRenameConversation, map[string]string{"id": c.ConversationID}, nil, `{"title":"new"}`))
				e, _ := body["error"].(map[string]any)
				if status != http.StatusTooManyRequests || e["code"] != errcode.RateLimited || resp.Headers["Retry-After"] == "" {
					t.Errorf("%d %v, Retry-After %q", status, body, resp.Headers["Retry-After"])
				}
			}
		})
	}
}
